-- Webhooks to merchants' apps, by the Standard Webhooks specification: an
-- endpoint per URL with its signing secret (sealed), an event per thing that
-- happened (written in the movement's own transaction, with a stable id),
-- and a delivery per endpoint and event, retried with backoff.

CREATE TABLE merchant_webhooks (
    id            uuid PRIMARY KEY,
    merchant_id   uuid NOT NULL REFERENCES merchants (id),
    url           text NOT NULL CONSTRAINT merchant_webhooks_url_length CHECK (char_length(url) BETWEEN 8 AND 2000),
    events        text[] NOT NULL CONSTRAINT merchant_webhooks_events_known
                  CHECK (events <@ ARRAY['payment.received', 'refund.completed']::text[] AND cardinality(events) >= 1),
    -- `whsec_…` sealed with AES-256-GCM under the master key.
    secret_sealed bytea NOT NULL,
    status        text NOT NULL DEFAULT 'ACTIVE' CONSTRAINT merchant_webhooks_status_known CHECK (status IN ('ACTIVE', 'DISABLED')),
    -- Since when every delivery has failed (NULL when the last one worked).
    failing_since timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE INDEX merchant_webhooks_merchant ON merchant_webhooks (merchant_id) WHERE status = 'ACTIVE';

CREATE TABLE webhook_events (
    -- `msg_…`: the `webhook-id` every delivery of the event carries.
    id          text PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES merchants (id),
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       uuid NOT NULL REFERENCES merchant_webhooks (id),
    event_id         text NOT NULL REFERENCES webhook_events (id),
    -- PENDING (to be tried at next_attempt_at) → DELIVERED | FAILED (gave up).
    status           text NOT NULL DEFAULT 'PENDING'
                     CONSTRAINT webhook_deliveries_status_known CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT webhook_deliveries_once UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
