-- A USSD step that carries a PIN is served once. Africa's Talking resends
-- a request the gateway is slow to answer, and a resent PIN step arriving
-- while the first is still being served (at another instance, say) would
-- check the same PIN again: each check counts towards the lockout before
-- it is known to be right, so a burst of retries of a correct PIN could
-- lock the account, and the screen saved first (the lock's) could contradict
-- the money the first request moved (a registration likewise: "number
-- taken" beside the account the first request opened). The first request claims its step
-- here (ussd::pin_step); a resend waits for the reply it saves. A claim
-- left by a request that died is taken over after 30 seconds.
CREATE TABLE ussd_pin_steps (
    session_id text NOT NULL CONSTRAINT ussd_pin_steps_id_length CHECK (char_length(session_id) BETWEEN 1 AND 100),
    -- The input the PIN was entered as (1 for the first input; 0 the dial).
    position   integer NOT NULL CONSTRAINT ussd_pin_steps_position_known CHECK (position >= 0),
    claimed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, position)
);
COMMENT ON TABLE ussd_pin_steps IS 'PIN steps of USSD sessions being or already served, so a resent step is answered by the first, never checked twice.';
CREATE INDEX ussd_pin_steps_claimed_at ON ussd_pin_steps (claimed_at);
