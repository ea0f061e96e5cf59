-- Idempotency records keep the domain outcome of a request (a result, or
-- the refusal as data) instead of an HTTP status and body, so every
-- channel (REST, USSD) replays it in its own words. An outcome of NULL is
-- a claim in flight: the key is taken before a slow call to another
-- service (an M-Pesa prompt), and a copy arriving meanwhile is told so.
ALTER TABLE idempotency_keys ADD COLUMN outcome jsonb;
-- Records written before this change cannot be replayed faithfully; a
-- retry of one is refused as a conflict rather than run a second time.
UPDATE idempotency_keys SET outcome = '{"err": {"error": "idempotency_conflict"}}';
ALTER TABLE idempotency_keys DROP COLUMN response_status, DROP COLUMN response_body;
COMMENT ON COLUMN idempotency_keys.outcome IS '{"ok": result} or {"err": refusal}; NULL while the first request is still in flight.';
