-- Agents and their float, treasury issuance (four eyes), offline vouchers,
-- agent commissions, and SMS that carry a secret.

-- Movements ---------------------------------------------------------------
ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_known
    CHECK (tx_type IN ('transfer', 'conversion', 'deposit', 'withdrawal', 'reversal', 'funding', 'payout', 'refund',
                       'cash_in', 'cash_out', 'issuance', 'voucher', 'redemption', 'voucher_refund'));

-- Money coming in from outside (an agent's cash-in, a voucher redeemed)
-- counts towards the receiver's incoming limits, not the sender's outgoing
-- ones: an agent's cash-ins are their business, not their own spending.
DROP INDEX transactions_limits_window;
CREATE INDEX transactions_limits_window ON transactions (from_user_id, created_at)
    INCLUDE (usd_cents) WHERE usd_cents IS NOT NULL AND tx_type NOT IN ('cash_in', 'redemption');
CREATE INDEX transactions_incoming_window ON transactions (to_user_id, created_at)
    INCLUDE (usd_cents) WHERE usd_cents IS NOT NULL AND tx_type IN ('cash_in', 'redemption');

-- Accounts ----------------------------------------------------------------
-- agent_float: an agent's e-money, per currency, owned like a wallet and,
-- like a wallet, never below zero. voucher_liability: the money of
-- vouchers issued and not yet redeemed or refunded; never below zero.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_known;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_known
    CHECK (kind IN ('wallet', 'agent_float', 'float', 'fee_revenue', 'fx_position', 'suspense', 'payout_hold',
                    'voucher_liability'));
ALTER TABLE accounts DROP CONSTRAINT accounts_wallet_has_owner;
ALTER TABLE accounts ADD CONSTRAINT accounts_owned_kinds_have_owner
    CHECK ((kind IN ('wallet', 'agent_float')) = (user_id IS NOT NULL));
ALTER TABLE accounts ADD CONSTRAINT accounts_agent_float_not_overdrawn
    CHECK (kind <> 'agent_float' OR balance >= locked);
ALTER TABLE accounts ADD CONSTRAINT accounts_voucher_liability_not_negative
    CHECK (kind <> 'voucher_liability' OR balance >= 0);
CREATE UNIQUE INDEX accounts_agent_float_key ON accounts (user_id, currency) WHERE kind = 'agent_float';
DROP INDEX accounts_house_key;
CREATE UNIQUE INDEX accounts_house_key ON accounts (kind, channel, currency, shard)
    WHERE kind NOT IN ('wallet', 'agent_float');

CREATE OR REPLACE FUNCTION open_house_accounts(currency_code text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO accounts (kind, channel, shard, currency)
    SELECT spec.kind, spec.channel, s.shard, currency_code
    FROM (VALUES ('float', 'treasury'), ('float', 'mpesa'), ('float', 'agent'),
                 ('fee_revenue', ''), ('fx_position', ''), ('suspense', ''),
                 ('payout_hold', 'mpesa'), ('voucher_liability', '')) AS spec (kind, channel)
    CROSS JOIN LATERAL generate_series(0, house_account_shards(spec.kind) - 1) AS s (shard)
    ON CONFLICT DO NOTHING
$$;
SELECT open_house_accounts(code) FROM currencies;

-- Agents ------------------------------------------------------------------
CREATE TABLE agents (
    user_id      uuid PRIMARY KEY REFERENCES users (id),
    -- What a customer types at the agent's counter.
    agent_number text NOT NULL CONSTRAINT agents_number_key UNIQUE
                 CONSTRAINT agents_number_six_digits CHECK (agent_number ~ '^[0-9]{6}$'),
    status       text NOT NULL DEFAULT 'ACTIVE' CONSTRAINT agents_status_known CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    appointed_by uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE agents IS 'Users appointed as cash agents; their float is the agent_float accounts.';

CREATE FUNCTION open_agent_floats(agent uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'agent_float', agent, c.code FROM currencies c
    ON CONFLICT DO NOTHING
$$;

CREATE FUNCTION agents_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM open_agent_floats(NEW.user_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER agents_open_floats AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION agents_after_insert();

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
    RETURN NEW;
END
$$;

-- Fees and commissions ------------------------------------------------------
ALTER TABLE fee_bands DROP CONSTRAINT fee_bands_kind_known;
ALTER TABLE fee_bands ADD CONSTRAINT fee_bands_kind_known
    CHECK (kind IN ('send', 'withdraw', 'convert', 'cash_out', 'voucher'));
-- Withdrawing cash at an agent: 1 %, at least USD 0.10, at most USD 5.00.
-- Creating a voucher: 0.5 %, at least USD 0.05, at most USD 2.00.
INSERT INTO fee_bands (kind, from_usd_cents, rate, min_fee_usd_cents, max_fee_usd_cents) VALUES
    ('cash_out', 0, 0.010, 10, 500),
    ('voucher', 0, 0.005, 5, 200);

-- What an agent earns per movement, in the same shape as the fee bands. A
-- cash-out's commission is a share of its fee (never more than the fee);
-- a cash-in is free to the customer and its commission is paid from fee
-- revenue. Both are posted in the movement's own journal entry.
CREATE TABLE commission_bands (
    kind              text NOT NULL CONSTRAINT commission_bands_kind_known CHECK (kind IN ('cash_in', 'cash_out')),
    from_usd_cents    bigint NOT NULL CONSTRAINT commission_bands_from_non_negative CHECK (from_usd_cents >= 0),
    rate              numeric(8, 6) NOT NULL CONSTRAINT commission_bands_rate_range CHECK (rate >= 0 AND rate < 1),
    min_usd_cents     bigint CONSTRAINT commission_bands_min_non_negative CHECK (min_usd_cents >= 0),
    max_usd_cents     bigint CONSTRAINT commission_bands_max_non_negative CHECK (max_usd_cents >= 0),
    PRIMARY KEY (kind, from_usd_cents)
);
INSERT INTO commission_bands (kind, from_usd_cents, rate, min_usd_cents, max_usd_cents) VALUES
    ('cash_in', 0, 0.002, 2, 200),
    ('cash_out', 0, 0.004, 4, 250);

-- Treasury issuance -----------------------------------------------------------
-- E-money enters only here: one admin proposes, another decides.
CREATE TABLE treasury_issuances (
    id            uuid PRIMARY KEY,
    agent_user_id uuid NOT NULL REFERENCES agents (user_id),
    amount        bigint NOT NULL CONSTRAINT treasury_issuances_amount_positive CHECK (amount > 0),
    currency      text NOT NULL REFERENCES currencies (code),
    -- The bank transfer the agent paid with; one issuance per reference.
    reference     text NOT NULL CONSTRAINT treasury_issuances_reference_key UNIQUE
                  CONSTRAINT treasury_issuances_reference_length CHECK (char_length(reference) BETWEEN 3 AND 64),
    status        text NOT NULL DEFAULT 'PENDING'
                  CONSTRAINT treasury_issuances_status_known CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    proposed_by   uuid NOT NULL REFERENCES users (id),
    proposal_note text,
    decided_by    uuid REFERENCES users (id),
    decision_note text,
    tx_id         uuid REFERENCES transactions (tx_id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    -- Four eyes, held by the database as well as the server.
    CONSTRAINT treasury_issuances_four_eyes CHECK (decided_by IS NULL OR decided_by <> proposed_by),
    CONSTRAINT treasury_issuances_decided CHECK ((status = 'PENDING') = (decided_by IS NULL)),
    CONSTRAINT treasury_issuances_posted CHECK ((status = 'APPROVED') = (tx_id IS NOT NULL))
);
CREATE INDEX treasury_issuances_status ON treasury_issuances (status, created_at DESC);

-- Vouchers ------------------------------------------------------------------
CREATE TABLE vouchers (
    id           uuid PRIMARY KEY,
    -- Named in the signed form.
    serial       bigserial CONSTRAINT vouchers_serial_key UNIQUE,
    -- HMAC-SHA3-256 of the typed code under a server key, to find a voucher
    -- by its code; the code itself is kept only sealed (AES-256-GCM under
    -- the master key) for its buyer to read again, so a copy of the
    -- database alone redeems nothing.
    code_digest  bytea NOT NULL CONSTRAINT vouchers_code_digest_key UNIQUE,
    code_sealed  bytea NOT NULL,
    -- The code's last four digits, to tell vouchers apart in lists.
    code_hint    text NOT NULL CONSTRAINT vouchers_code_hint_format CHECK (code_hint ~ '^[0-9]{4}$'),
    issuer_id    uuid NOT NULL REFERENCES users (id),
    amount       bigint NOT NULL CONSTRAINT vouchers_amount_positive CHECK (amount > 0),
    fee          bigint NOT NULL CONSTRAINT vouchers_fee_non_negative CHECK (fee >= 0),
    currency     text NOT NULL REFERENCES currencies (code),
    status       text NOT NULL DEFAULT 'ACTIVE'
                 CONSTRAINT vouchers_status_known CHECK (status IN ('ACTIVE', 'REDEEMED', 'CANCELLED', 'EXPIRED')),
    expires_at   timestamptz NOT NULL,
    -- The signed form (Ed25519 over serial, amount, currency and expiry).
    signed       text NOT NULL,
    issue_tx_id  uuid NOT NULL REFERENCES transactions (tx_id),
    -- The redemption, or the refund at cancellation or expiry.
    settle_tx_id uuid REFERENCES transactions (tx_id),
    redeemed_by  uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz,
    CONSTRAINT vouchers_settled CHECK ((status = 'ACTIVE') = (settle_tx_id IS NULL)),
    CONSTRAINT vouchers_redeemer CHECK ((status = 'REDEEMED') = (redeemed_by IS NOT NULL))
);
CREATE INDEX vouchers_issuer ON vouchers (issuer_id, created_at DESC);
CREATE INDEX vouchers_due ON vouchers (expires_at) WHERE status = 'ACTIVE';

-- SMS with a secret ---------------------------------------------------------
-- A message that carries a secret (a voucher code) is stored twice: masked
-- in `message` (what operators see) and sealed with AES-256-GCM under the
-- master key in `sealed_message`, which the sender opens and then erases.
ALTER TABLE sms_outbox ADD COLUMN sealed_message bytea;
