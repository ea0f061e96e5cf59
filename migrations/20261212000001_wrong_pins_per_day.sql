-- Wrong PINs an account has seen since `wrong_pins_since` (a window of a
-- day), whatever correct PINs came between them: the lockout's daily cap
-- reads this, so guesses spread between the owner's own logins (four at a
-- time, never five in a row) still lock the account after ten a day.
ALTER TABLE users
    ADD COLUMN wrong_pins_recent integer NOT NULL DEFAULT 0
        CONSTRAINT users_wrong_pins_recent_non_negative CHECK (wrong_pins_recent >= 0),
    ADD COLUMN wrong_pins_since timestamptz;
