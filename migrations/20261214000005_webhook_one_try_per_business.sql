-- One webhook try out per business at a time. Tries are picked oldest due
-- first across every business, and a business with many endpoints that
-- answer slowly (each try may take up to fifteen seconds) could otherwise
-- keep every sender busy, and every other business's webhooks would queue
-- behind its backlog. An endpoint's try in flight is marked here until it
-- is recorded (or its lease ends); no endpoint of the same business is
-- claimed meanwhile (merchants::webhooks::claim).
ALTER TABLE merchant_webhooks ADD COLUMN trying_until timestamptz;
