-- An STK Push whose answer never came (a timeout, a lost or unreadable
-- reply, a server error) may still have reached the phone. The customer is
-- told it failed; until prompt_unanswered_until, a paid callback for a
-- CheckoutRequestID we never saw, with this deposit's phone and amount and
-- confirmed by STK Query, is attached to it and booked to suspense
-- (mpesa::unanswered). Set when the deposit is recorded, cleared when the
-- push is answered.
ALTER TABLE mpesa_deposits ADD COLUMN prompt_unanswered_until timestamptz;
CREATE INDEX mpesa_deposits_unanswered ON mpesa_deposits (phone, amount, created_at)
    WHERE prompt_unanswered_until IS NOT NULL AND checkout_request_id IS NULL;

-- A paid callback STK Query has not confirmed yet (no answer, still
-- processing, or not asked: too many copies), for a deposit that already
-- ended or one whose push went unanswered. Nothing is booked on a
-- callback's word: the sweep asks STK Query again, with growing pauses,
-- for a day, and books the payment only once it is confirmed. At most a
-- few per deposit (mpesa::paid_reports).
CREATE TABLE stk_paid_reports (
    checkout_request_id text PRIMARY KEY,
    deposit_ref         uuid NOT NULL REFERENCES mpesa_deposits (ref),
    -- The callback as received (StkCallback), applied once confirmed.
    callback            jsonb NOT NULL,
    reported_at         timestamptz NOT NULL DEFAULT now(),
    queries             integer NOT NULL DEFAULT 0,
    next_query_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stk_paid_reports_due ON stk_paid_reports (next_query_at);
CREATE INDEX stk_paid_reports_deposit ON stk_paid_reports (deposit_ref);

-- Simulator faults for STK: lose_replies (the prompt reaches the phone, the
-- answer to the push never reaches the gateway) or query_down (STK Query
-- answers nothing usable).
ALTER TABLE sim_daraja_account ADD COLUMN stk_fault text
    CONSTRAINT sim_daraja_account_stk_fault_known CHECK (stk_fault IN ('lose_replies', 'query_down'));
