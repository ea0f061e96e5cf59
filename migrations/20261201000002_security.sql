-- Security hardening.

-- Every token carries the epoch it was issued in; a PIN change, a PIN
-- reset, a suspension or "log out everywhere" moves the user to a new epoch,
-- which ends every earlier token at once on every instance.
ALTER TABLE users ADD COLUMN token_epoch integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN users.token_epoch IS 'Tokens issued in an earlier epoch no longer work.';

-- The escalating lockout: how many locks in a row the account has had
-- (5 minutes, then an hour, then until an admin unlocks it: locked_until =
-- infinity). A correct PIN resets it.
ALTER TABLE users ADD COLUMN lockout_level smallint NOT NULL DEFAULT 0
    CONSTRAINT users_lockout_level_non_negative CHECK (lockout_level >= 0);

-- A locked quote belongs to a user; anonymous callers get an indicative
-- price and write nothing. Ownerless quotes were only ever 30-second offers.
DELETE FROM fx_quotes WHERE user_id IS NULL;
ALTER TABLE fx_quotes ALTER COLUMN user_id SET NOT NULL;
