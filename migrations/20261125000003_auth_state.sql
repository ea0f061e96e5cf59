-- State that auth needs shared by every gateway instance.

CREATE TABLE revoked_tokens (
    jti        uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    -- After this the token is dead anyway and the row can be pruned.
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE revoked_tokens IS 'JWT ids logged out before they expired.';

CREATE TABLE rate_limits (
    -- 'user:<uuid>' or 'ip:<address>'.
    bucket text PRIMARY KEY,
    -- Times of the requests admitted in the current 60-second sliding window
    -- (at most the limit, so the row stays small).
    hits   timestamptz[] NOT NULL
);
COMMENT ON TABLE rate_limits IS 'Sliding-window request logs for rate limiting.';

CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    -- AES-256-GCM under the master key, with the name as associated data.
    sealed     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE server_secrets IS 'Keys generated once and shared by all instances (JWT, transaction signing), encrypted at rest.';
