-- A posting is looked up by its transaction or by its account; its own id only
-- orders the postings of one transaction. Keyed (tx_id, id), the primary key
-- serves look-ups by transaction and the separate tx_id index goes: one index
-- entry fewer per posting, three per transfer. The key's index was built
-- concurrently by the previous migration, so this one holds its lock for
-- moments, not for a build over the largest table.
ALTER TABLE postings DROP CONSTRAINT postings_pkey;
ALTER TABLE postings ADD CONSTRAINT postings_pkey PRIMARY KEY USING INDEX postings_tx_id_id;
DROP INDEX postings_tx_id;
