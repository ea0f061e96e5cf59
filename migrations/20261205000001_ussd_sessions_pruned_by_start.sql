-- Every USSD step rewrites its session row. The only index beside the key was
-- on `updated_at`, which every step changes, so no step could update the row
-- in place (a HOT update): each wrote a new row version on another page and
-- two index entries. Housekeeping prunes by `created_at` instead (a session
-- lasts at most 180 seconds, and the cut-off is a day), which no step
-- changes, and pages keep room for a session's next versions.
DROP INDEX ussd_sessions_updated_at;
CREATE INDEX ussd_sessions_created_at ON ussd_sessions (created_at);
ALTER TABLE ussd_sessions SET (fillfactor = 50);
