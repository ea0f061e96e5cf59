-- An endpoint is held while a try of it is out (one at a time) and, after a
-- failure, for as long as it has been failing: deliveries of a held endpoint
-- wait, so one that does not answer gets fewer and fewer tries and never
-- takes the tries other businesses' webhooks wait for.
ALTER TABLE merchant_webhooks ADD COLUMN held_until timestamptz;
-- What is still waiting for an endpoint, given up when it goes.
CREATE INDEX webhook_deliveries_waiting ON webhook_deliveries (webhook_id) WHERE status = 'PENDING';
