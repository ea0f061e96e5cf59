-- Merchants: businesses customers pay, by Buy Goods till or by Paybill and
-- account number. Each has an account per currency (kind 'merchant', held
-- under its owner's user id), and pays a percentage fee, capped, on what it
-- is paid (fee kind 'merchant'); the customer pays none.

ALTER TABLE users DROP CONSTRAINT users_role_known;
ALTER TABLE users ADD CONSTRAINT users_role_known CHECK (role IN ('user', 'agent', 'admin', 'merchant'));

ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_known
    CHECK (tx_type IN ('transfer', 'conversion', 'deposit', 'withdrawal', 'reversal', 'funding', 'payout', 'refund',
                       'cash_in', 'cash_out', 'issuance', 'voucher', 'redemption', 'voucher_refund',
                       'merchant_payment'));

ALTER TABLE accounts DROP CONSTRAINT accounts_kind_known;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_known
    CHECK (kind IN ('wallet', 'agent_float', 'merchant', 'float', 'fee_revenue', 'fx_position', 'suspense',
                    'payout_hold', 'voucher_liability'));
ALTER TABLE accounts DROP CONSTRAINT accounts_owned_kinds_have_owner;
ALTER TABLE accounts ADD CONSTRAINT accounts_owned_kinds_have_owner
    CHECK ((kind IN ('wallet', 'agent_float', 'merchant')) = (user_id IS NOT NULL));
ALTER TABLE accounts ADD CONSTRAINT accounts_merchant_not_overdrawn
    CHECK (kind <> 'merchant' OR balance >= locked);
CREATE UNIQUE INDEX accounts_merchant_key ON accounts (user_id, currency) WHERE kind = 'merchant';
DROP INDEX accounts_house_key;
CREATE UNIQUE INDEX accounts_house_key ON accounts (kind, channel, currency, shard)
    WHERE kind NOT IN ('wallet', 'agent_float', 'merchant');

CREATE TABLE merchants (
    id            uuid PRIMARY KEY,
    -- One business per owner: its accounts are the owner's 'merchant' accounts.
    owner_user_id uuid NOT NULL CONSTRAINT merchants_owner_key UNIQUE REFERENCES users (id),
    name          text NOT NULL CONSTRAINT merchants_name_length CHECK (char_length(name) BETWEEN 2 AND 40),
    kind          text NOT NULL CONSTRAINT merchants_kind_known CHECK (kind IN ('till', 'paybill')),
    -- What a customer types: a 6-digit till or a 6-digit paybill number.
    number        text NOT NULL CONSTRAINT merchants_number_key UNIQUE
                  CONSTRAINT merchants_number_six_digits CHECK (number ~ '^[0-9]{6}$'),
    status        text NOT NULL DEFAULT 'ACTIVE' CONSTRAINT merchants_status_known CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    registered_by uuid NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE merchants IS 'Businesses customers pay; their money is the owner''s merchant accounts.';

CREATE FUNCTION merchants_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'merchant', NEW.owner_user_id, c.code FROM currencies c
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER merchants_open_accounts AFTER INSERT ON merchants
    FOR EACH ROW EXECUTE FUNCTION merchants_after_insert();

-- A payment names the merchant; a paybill payment also the customer's
-- account number with the business (an invoice, a meter).
CREATE TABLE merchant_payments (
    tx_id        uuid PRIMARY KEY REFERENCES transactions (tx_id),
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    customer_id  uuid NOT NULL REFERENCES users (id),
    amount       bigint NOT NULL CONSTRAINT merchant_payments_amount_positive CHECK (amount > 0),
    fee          bigint NOT NULL CONSTRAINT merchant_payments_fee_range CHECK (fee >= 0 AND fee < amount),
    currency     text NOT NULL REFERENCES currencies (code),
    account      text CONSTRAINT merchant_payments_account_length CHECK (char_length(account) BETWEEN 1 AND 20),
    note         text CONSTRAINT merchant_payments_note_length CHECK (char_length(note) <= 100),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_payments_statement ON merchant_payments (merchant_id, created_at DESC);

-- The merchant's fee: 1 % of what it is paid, at most USD 2.00.
ALTER TABLE fee_bands DROP CONSTRAINT fee_bands_kind_known;
ALTER TABLE fee_bands ADD CONSTRAINT fee_bands_kind_known
    CHECK (kind IN ('send', 'withdraw', 'convert', 'cash_out', 'voucher', 'merchant'));
INSERT INTO fee_bands (kind, from_usd_cents, rate, min_fee_usd_cents, max_fee_usd_cents) VALUES
    ('merchant', 0, 0.010, NULL, 200);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'REVOKE UPDATE, DELETE ON merchant_payments FROM chainpay_app';
    END IF;
END
$$;
