-- Each leaf records its transaction's sequence number as well as its id, so
-- validation fetches a block's transactions through the sequence index, in
-- the order they were written, instead of one random probe of the uuid key
-- per leaf (measured: a page of 10,000 leaves in ~25 ms instead of ~100 ms).
-- The sequence is not trusted: the leaf is rebuilt from the row it finds,
-- tx_id included, so a wrong tx_seq shows as a leaf that does not match.
--
-- Existing leaves are filled in once, which rewrites block_entries (measured
-- here: 15 s per million leaves) under an exclusive lock: sealing and every
-- read of the chain (history, receipts, proofs) wait meanwhile. The lock is
-- not queued for long behind a running reader: past lock_timeout the
-- migration fails and the instance does not start, to be retried. Its
-- append-only guard is lifted for the one statement, inside this
-- migration's transaction.
SET LOCAL lock_timeout = '5s';
ALTER TABLE block_entries ADD COLUMN tx_seq bigint;
ALTER TABLE block_entries DISABLE TRIGGER block_entries_append_only;
UPDATE block_entries e SET tx_seq = t.seq FROM transactions t WHERE t.tx_id = e.tx_id;
ALTER TABLE block_entries ENABLE TRIGGER block_entries_append_only;
ALTER TABLE block_entries ALTER COLUMN tx_seq SET NOT NULL;
COMMENT ON COLUMN block_entries.tx_seq IS 'transactions.seq of tx_id, the key validation reads the row by.';
