-- When a Transaction Status query was answered: an answer Daraja delivers
-- twice is applied once, so two deliveries of one "no such transaction"
-- never count as two answers towards refunding a payout.
ALTER TABLE mpesa_status_queries ADD COLUMN answered_at timestamptz;
