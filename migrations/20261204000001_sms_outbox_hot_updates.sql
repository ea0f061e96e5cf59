-- Each SMS row changes twice after it is written: when Africa's Talking accepts
-- it (status SENT and its messageId) and when its delivery report arrives
-- (status DELIVERED or FAILED). An update that touches no indexed column can
-- stay on its page with no new index entries (a HOT update), but `status` was
-- in the due index's predicate, so every change wrote three index entries.
--
-- The due index now filters on `queued`, which only the worker's own update
-- changes; a delivery report touches no indexed column. Rows keep room on
-- their page for their later versions, and the messageId index holds only
-- messages that have one (a queued message added a NULL entry before).
--
-- Upgrading: adding the stored generated column rewrites sms_outbox under an
-- exclusive lock, which blocks every movement that queues an SMS until it is
-- done (about 8 s per million messages on the development machine). On a
-- large outbox, apply it in a quiet window (see README, "Deployment"). While
-- older instances still run, their SMS claims cannot use the new due index.
ALTER TABLE sms_outbox ADD COLUMN queued boolean GENERATED ALWAYS AS (status = 'QUEUED') STORED;

DROP INDEX sms_outbox_due;
CREATE INDEX sms_outbox_due ON sms_outbox (next_attempt_at, id) WHERE queued;

ALTER TABLE sms_outbox DROP CONSTRAINT sms_outbox_at_message_id_key;
CREATE UNIQUE INDEX sms_outbox_at_message_id_key ON sms_outbox (at_message_id) WHERE at_message_id IS NOT NULL;

ALTER TABLE sms_outbox SET (fillfactor = 50);
