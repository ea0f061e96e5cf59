-- How long a bucket's hits count, in seconds: the window of the limit that
-- writes it. Housekeeping removes a bucket only once its newest hit is older
-- than that, so a day's limit (a business's key and endpoint creations, KYC
-- submissions, voucher guesses) is not reset by an hour of quiet. The
-- default, a day (the longest window any limit uses), covers buckets kept
-- before and those written by an instance still running the code before
-- this (a rolling upgrade): such a bucket is kept longer, never shorter.
ALTER TABLE rate_limits ADD COLUMN window_s integer NOT NULL DEFAULT 86400;
COMMENT ON COLUMN rate_limits.window_s IS 'Seconds the hits count for; the bucket is pruned once its newest hit is older.';
