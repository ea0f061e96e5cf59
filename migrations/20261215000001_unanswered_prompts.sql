-- An STK Push whose answer never came (a timeout, a lost or unreadable
-- reply) may still have reached the phone. The customer is told it failed;
-- until prompt_unanswered_until, a paid callback for a CheckoutRequestID we
-- never saw, with this deposit's phone and amount and confirmed by STK
-- Query, is attached to it and booked to suspense (mpesa::unanswered).
ALTER TABLE mpesa_deposits ADD COLUMN prompt_unanswered_until timestamptz;
CREATE INDEX mpesa_deposits_unanswered ON mpesa_deposits (phone, amount, created_at)
    WHERE prompt_unanswered_until IS NOT NULL AND checkout_request_id IS NULL;

-- Simulator faults for STK: lose_replies (the prompt reaches the phone, the
-- answer to the push never reaches the gateway) or query_down (STK Query
-- answers nothing usable).
ALTER TABLE sim_daraja_account ADD COLUMN stk_fault text
    CONSTRAINT sim_daraja_account_stk_fault_known CHECK (stk_fault IN ('lose_replies', 'query_down'));
