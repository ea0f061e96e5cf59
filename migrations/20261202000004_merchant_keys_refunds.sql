-- Merchant API keys (shown once, kept only as a digest, scoped, revocable)
-- and refunds of merchant payments.

CREATE TABLE merchant_api_keys (
    id           uuid PRIMARY KEY,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    name         text NOT NULL CONSTRAINT merchant_api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 40),
    -- The key's public part (`cpk_<prefix>_…`), how it is found and shown.
    prefix       text NOT NULL CONSTRAINT merchant_api_keys_prefix_key UNIQUE
                 CONSTRAINT merchant_api_keys_prefix_shape CHECK (prefix ~ '^[0-9a-f]{12}$'),
    -- SHA3-256 of the whole key; the key itself is never stored.
    key_digest   bytea NOT NULL CONSTRAINT merchant_api_keys_digest_length CHECK (length(key_digest) = 32),
    scopes       text[] NOT NULL CONSTRAINT merchant_api_keys_scopes_known
                 CHECK (scopes <@ ARRAY['payments:read', 'refunds:write']::text[] AND cardinality(scopes) >= 1),
    created_by   uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX merchant_api_keys_merchant ON merchant_api_keys (merchant_id, created_at DESC);

ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_known
    CHECK (tx_type IN ('transfer', 'conversion', 'deposit', 'withdrawal', 'reversal', 'funding', 'payout', 'refund',
                       'cash_in', 'cash_out', 'issuance', 'voucher', 'redemption', 'voucher_refund',
                       'merchant_payment', 'merchant_refund'));

-- A refund returns part or all of one payment, never more than is left of
-- it (the payment row is locked while the refunds are summed).
CREATE TABLE merchant_refunds (
    tx_id          uuid PRIMARY KEY REFERENCES transactions (tx_id),
    payment_tx_id  uuid NOT NULL REFERENCES merchant_payments (tx_id),
    amount         bigint NOT NULL CONSTRAINT merchant_refunds_amount_positive CHECK (amount > 0),
    requested_by   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_refunds_payment ON merchant_refunds (payment_tx_id);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'REVOKE UPDATE, DELETE ON merchant_refunds FROM chainpay_app';
    END IF;
END
$$;
