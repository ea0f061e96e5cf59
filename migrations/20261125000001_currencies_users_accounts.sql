-- Currencies, users and the accounts of the double-entry ledger.

-- Currencies are data: supporting UGX (no minor unit) is one INSERT here, and
-- the triggers below open its system accounts and every user's wallet.
CREATE TABLE currencies (
    code     text PRIMARY KEY CONSTRAINT currencies_code_format CHECK (code ~ '^[A-Z]{3}$'),
    -- Digits after the decimal point: amounts are stored as amount * 10^exponent.
    exponent smallint NOT NULL CONSTRAINT currencies_exponent_range CHECK (exponent BETWEEN 0 AND 4),
    name     text NOT NULL
);
COMMENT ON TABLE currencies IS 'Supported ISO 4217 currencies; every amount is an integer count of minor units.';

INSERT INTO currencies (code, exponent, name) VALUES
    ('KES', 2, 'Kenyan shilling'),
    ('USD', 2, 'US dollar'),
    ('EUR', 2, 'Euro'),
    ('GBP', 2, 'Pound sterling'),
    ('NGN', 2, 'Nigerian naira');

CREATE TABLE users (
    id                  uuid PRIMARY KEY,
    -- E.164, normalised by the application before it gets here.
    phone               text NOT NULL CONSTRAINT users_phone_key UNIQUE
                        CONSTRAINT users_phone_e164 CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    name                text NOT NULL CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Argon2id PHC string; the PIN itself is never stored.
    pin_hash            text NOT NULL,
    role                text NOT NULL DEFAULT 'user' CONSTRAINT users_role_known CHECK (role IN ('user', 'agent', 'admin')),
    kyc_status          text NOT NULL DEFAULT 'PENDING'
                        CONSTRAINT users_kyc_status_known CHECK (kyc_status IN ('PENDING', 'VERIFIED', 'REJECTED')),
    -- Suspension is separate from KYC: an operator can freeze a verified user.
    suspended           boolean NOT NULL DEFAULT false,
    -- Lockout lives here (not in process memory) so it survives restarts and
    -- every gateway instance sees the same count.
    failed_pin_attempts integer NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);
COMMENT ON TABLE users IS 'People and operators; identity is the phone number.';

CREATE TABLE accounts (
    id         bigserial PRIMARY KEY,
    -- wallet: a customer's money. The rest are the house''s own accounts:
    -- float (money held at a channel such as M-Pesa or the treasury),
    -- fee_revenue, fx_position, suspense (unmatched money awaiting review) and
    -- payout_hold (money on its way out, not yet confirmed).
    kind       text NOT NULL CONSTRAINT accounts_kind_known
               CHECK (kind IN ('wallet', 'float', 'fee_revenue', 'fx_position', 'suspense', 'payout_hold')),
    user_id    uuid REFERENCES users (id),
    -- Which channel a float or hold belongs to (treasury, mpesa, agent); '' for none.
    channel    text NOT NULL DEFAULT '',
    -- Busy house accounts are split into shards so concurrent transfers do not
    -- queue on one row lock; their balance is the sum over shards.
    shard      smallint NOT NULL DEFAULT 0,
    currency   text NOT NULL REFERENCES currencies (code),
    -- Sum of this account's postings (the ledger check proves it).
    balance    bigint NOT NULL DEFAULT 0,
    -- Part of the balance reserved for pending operations; available = balance - locked.
    locked     bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_locked_non_negative CHECK (locked >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_wallet_has_owner CHECK ((kind = 'wallet') = (user_id IS NOT NULL)),
    -- The last line of defence: whatever the application does, a customer
    -- wallet can never go below what it has reserved, hence never below zero.
    CONSTRAINT accounts_wallet_not_overdrawn CHECK (kind <> 'wallet' OR balance >= locked)
);
COMMENT ON TABLE accounts IS 'Ledger accounts. Wallets are positive; the house accounts that funded them hold the negative side, so each currency sums to zero.';
CREATE UNIQUE INDEX accounts_wallet_key ON accounts (user_id, currency) WHERE kind = 'wallet';
CREATE UNIQUE INDEX accounts_house_key ON accounts (kind, channel, currency, shard) WHERE kind <> 'wallet';

-- How many shards each house account kind has.
CREATE FUNCTION house_account_shards(account_kind text) RETURNS smallint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE account_kind WHEN 'fee_revenue' THEN 8 ELSE 1 END::smallint
$$;

-- Opens the house accounts of one currency.
CREATE FUNCTION open_house_accounts(currency_code text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO accounts (kind, channel, shard, currency)
    SELECT spec.kind, spec.channel, s.shard, currency_code
    FROM (VALUES ('float', 'treasury'), ('float', 'mpesa'), ('float', 'agent'),
                 ('fee_revenue', ''), ('fx_position', ''), ('suspense', ''),
                 ('payout_hold', 'mpesa')) AS spec (kind, channel)
    CROSS JOIN LATERAL generate_series(0, house_account_shards(spec.kind) - 1) AS s (shard)
    ON CONFLICT DO NOTHING
$$;

CREATE FUNCTION currencies_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM open_house_accounts(NEW.code);
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'wallet', u.id, NEW.code FROM users u
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER currencies_open_accounts AFTER INSERT ON currencies
    FOR EACH ROW EXECUTE FUNCTION currencies_after_insert();

CREATE FUNCTION users_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts (kind, user_id, currency)
    SELECT 'wallet', NEW.id, c.code FROM currencies c
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_open_wallets AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_after_insert();

-- The currencies inserted above predate their trigger.
SELECT open_house_accounts(code) FROM currencies;
