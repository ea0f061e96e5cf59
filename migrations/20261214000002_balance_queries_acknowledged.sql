-- An Account Balance answer counts only for a query Safaricom acknowledged
-- to us. An answer may arrive before its acknowledgement is stored, so the
-- answer route may create the row; one forged with a leaked callback token
-- (for a conversation nobody started) would then have been the "latest"
-- balance reconciliation compares the books with, hiding a gap. Rows from
-- before this column are not trusted: the next query answers afresh.
ALTER TABLE mpesa_balance_queries ADD COLUMN acknowledged_at timestamptz;
