-- A Transaction Status answer that finds no payout is proof the payout was
-- never made only while the query itself is known to work: M-Pesa's result
-- codes do not tell "no such transaction" from a query refused for its own
-- reasons (an initiator lacking the role, a rejected credential), and taking
-- those for "never made" would refund payouts M-Pesa paid. So an answer
-- that succeeded (found a transaction, whatever its state) is kept as
-- evidence; a "no record" answer counts towards a refund only while there
-- is recent evidence, and one that came without it is noted on the payout
-- (status_unproven_at), which has a control query sent about a payout
-- known to be completed.
ALTER TABLE mpesa_status_queries
    ADD COLUMN found boolean,
    ADD COLUMN control boolean NOT NULL DEFAULT false;
CREATE INDEX mpesa_status_queries_found ON mpesa_status_queries (answered_at) WHERE found;
CREATE INDEX mpesa_status_queries_control ON mpesa_status_queries (asked_at) WHERE control;
ALTER TABLE mpesa_withdrawals ADD COLUMN status_unproven_at timestamptz;
