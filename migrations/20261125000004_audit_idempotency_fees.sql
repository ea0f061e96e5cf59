-- Audit log, idempotency records and the interim fee schedule.

CREATE TABLE audit_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_user_id uuid,
    -- e.g. auth.login, wallet.send, admin.suspend
    action        text NOT NULL,
    -- success | failure | rejected
    outcome       text NOT NULL CONSTRAINT audit_log_outcome_known CHECK (outcome IN ('success', 'failure', 'rejected')),
    -- What the action was about: a transaction id, a user id, a phone.
    subject       text,
    detail        jsonb NOT NULL DEFAULT '{}',
    request_id    text
);
COMMENT ON TABLE audit_log IS 'Append-only record of security and money events.';
CREATE INDEX audit_log_actor ON audit_log (actor_user_id, id DESC);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION reject_modification();

CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id),
    key             text NOT NULL CONSTRAINT idempotency_keys_key_length CHECK (char_length(key) BETWEEN 1 AND 255),
    -- SHA3-256 of method, path and body: the same key with another body is a conflict.
    request_hash    text NOT NULL,
    response_status smallint NOT NULL,
    response_body   jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
COMMENT ON TABLE idempotency_keys IS 'The saved outcome of each keyed money request, written in the same transaction as the movement.';

CREATE TABLE fee_schedule (
    tx_type        text NOT NULL,
    currency       text NOT NULL REFERENCES currencies (code),
    flat_fee_minor bigint NOT NULL CONSTRAINT fee_schedule_fee_non_negative CHECK (flat_fee_minor >= 0),
    PRIMARY KEY (tx_type, currency)
);
COMMENT ON TABLE fee_schedule IS 'Flat fee per transaction type and currency; a currency without a row is free.';
INSERT INTO fee_schedule (tx_type, currency, flat_fee_minor) VALUES
    ('transfer', 'KES', 1000),
    ('transfer', 'USD', 10),
    ('transfer', 'EUR', 10),
    ('transfer', 'GBP', 10),
    ('transfer', 'NGN', 5000);
