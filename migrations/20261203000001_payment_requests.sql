-- Request to pay: a business asks a customer to pay an amount under its own
-- reference; the customer pays it (once) or declines it, or it expires.
-- Also: merchants withdraw to M-Pesa, a new currency opens merchant
-- accounts, and the application role loses the writes it never needs on
-- the merchant tables.

CREATE TABLE payment_requests (
    id            uuid PRIMARY KEY,
    merchant_id   uuid NOT NULL REFERENCES merchants (id),
    customer_id   uuid NOT NULL REFERENCES users (id),
    amount        bigint NOT NULL CONSTRAINT payment_requests_amount_positive CHECK (amount > 0),
    currency      text NOT NULL REFERENCES currencies (code),
    -- The business's own reference (an invoice or order number); one
    -- request per reference, so a retried create finds the first.
    reference     text NOT NULL CONSTRAINT payment_requests_reference_format CHECK (reference ~ '^[A-Za-z0-9_-]{1,40}$'),
    -- PENDING → PAID | DECLINED | EXPIRED, once.
    status        text NOT NULL DEFAULT 'PENDING'
                  CONSTRAINT payment_requests_status_known CHECK (status IN ('PENDING', 'PAID', 'DECLINED', 'EXPIRED')),
    expires_at    timestamptz NOT NULL,
    -- The payment, when paid: one payment per request, one request per payment.
    tx_id         uuid CONSTRAINT payment_requests_tx_key UNIQUE REFERENCES transactions (tx_id),
    -- Who asked: the key's id, or NULL for the owner's own token.
    created_by_key uuid REFERENCES merchant_api_keys (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    CONSTRAINT payment_requests_reference_key UNIQUE (merchant_id, reference),
    CONSTRAINT payment_requests_paid_has_payment CHECK ((status = 'PAID') = (tx_id IS NOT NULL)),
    CONSTRAINT payment_requests_decided CHECK ((status = 'PENDING') = (decided_at IS NULL))
);
CREATE INDEX payment_requests_waiting ON payment_requests (customer_id, created_at) WHERE status = 'PENDING';
CREATE INDEX payment_requests_due ON payment_requests (expires_at) WHERE status = 'PENDING';
COMMENT ON TABLE payment_requests IS 'Businesses asking customers to pay; paid at most once, under the row lock.';

ALTER TABLE merchant_webhooks DROP CONSTRAINT merchant_webhooks_events_known;
ALTER TABLE merchant_webhooks ADD CONSTRAINT merchant_webhooks_events_known
    CHECK (events <@ ARRAY['payment.received', 'refund.completed', 'payment_request.paid',
                           'payment_request.declined', 'payment_request.expired']::text[]
           AND cardinality(events) >= 1);

ALTER TABLE merchant_api_keys DROP CONSTRAINT merchant_api_keys_scopes_known;
ALTER TABLE merchant_api_keys ADD CONSTRAINT merchant_api_keys_scopes_known
    CHECK (scopes <@ ARRAY['payments:read', 'refunds:write', 'payment-requests:write']::text[] AND cardinality(scopes) >= 1);

-- A withdrawal to M-Pesa from the business's account instead of the owner's wallet.
ALTER TABLE mpesa_withdrawals ADD COLUMN from_merchant boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION currencies_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM open_house_accounts(NEW.code);
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'wallet', u.id, NEW.code FROM users u
    ON CONFLICT DO NOTHING;
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'agent_float', a.user_id, NEW.code FROM agents a
    ON CONFLICT DO NOTHING;
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'merchant', m.owner_user_id, NEW.code FROM merchants m
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'REVOKE DELETE ON payment_requests, webhook_events, merchant_api_keys, merchant_webhooks, merchants FROM chainpay_app';
        EXECUTE 'REVOKE UPDATE ON webhook_events, merchants FROM chainpay_app';
        EXECUTE 'GRANT UPDATE (status, updated_at) ON merchants TO chainpay_app';
    END IF;
END
$$;
