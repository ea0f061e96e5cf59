-- A four-eyes proposal lapses: it counts only while its proposer is still
-- an admin in good standing and for three days (four_eyes::proposer_stands),
-- so one admin cannot leave proposals behind that a single remaining admin
-- books after the proposer was suspended or demoted. Suspense items record
-- when their proposal was made; one proposed before this column has lapsed.
ALTER TABLE reconciliation_items ADD COLUMN proposed_at timestamptz;
