-- no-transaction
-- Built beside the live table without blocking its writes (the next migration
-- makes it the primary key): see 20261204000003.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS postings_tx_id_id ON postings (tx_id, id);
