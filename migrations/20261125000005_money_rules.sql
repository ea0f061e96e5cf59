-- Money rules as data: FX rates and quotes, the tiered fee schedule, the AML
-- limits per KYC tier, the sanctions list and suspicious-activity reports.

-- FX -------------------------------------------------------------------------

CREATE TABLE fx_rates (
    currency   text PRIMARY KEY REFERENCES currencies (code),
    -- Units of the currency one US dollar buys; every pair is derived from these legs.
    usd_mid    numeric(24, 10) NOT NULL CONSTRAINT fx_rates_positive CHECK (usd_mid > 0),
    -- admin (set by an operator), simulated (the demo feed) or seed (this migration).
    source     text NOT NULL DEFAULT 'admin' CONSTRAINT fx_rates_source_known CHECK (source IN ('admin', 'simulated', 'seed')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE fx_rates IS 'USD legs of every currency: the rate book conversions, fees and limits read.';
-- Mid-market levels of late 2026, rounded.
INSERT INTO fx_rates (currency, usd_mid, source) VALUES
    ('USD', 1, 'seed'),
    ('KES', 129.50, 'seed'),
    ('EUR', 0.92, 'seed'),
    ('GBP', 0.79, 'seed'),
    ('NGN', 1550.00, 'seed');

CREATE TABLE fx_settings (
    singleton         boolean PRIMARY KEY DEFAULT true CONSTRAINT fx_settings_single_row CHECK (singleton),
    -- Total bid/ask spread: each conversion applies half of it against the mid.
    spread            numeric(8, 6) NOT NULL CONSTRAINT fx_settings_spread_range CHECK (spread >= 0 AND spread < 1),
    -- How long a quote's rate is guaranteed.
    quote_ttl_seconds integer NOT NULL CONSTRAINT fx_settings_ttl_positive CHECK (quote_ttl_seconds > 0)
);
INSERT INTO fx_settings (spread, quote_ttl_seconds) VALUES (0.015, 30);

CREATE TABLE fx_quotes (
    quote_id         uuid PRIMARY KEY,
    -- The user who asked, when authenticated; only they may use it.
    user_id          uuid REFERENCES users (id),
    from_currency    text NOT NULL REFERENCES currencies (code),
    to_currency      text NOT NULL REFERENCES currencies (code),
    amount           bigint NOT NULL CONSTRAINT fx_quotes_amount_positive CHECK (amount > 0),
    converted_amount bigint NOT NULL CONSTRAINT fx_quotes_converted_positive CHECK (converted_amount > 0),
    rate             numeric(30, 10) NOT NULL,
    fee              bigint NOT NULL CONSTRAINT fx_quotes_fee_non_negative CHECK (fee >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    -- Set once, by the conversion that used the quote.
    used_by_tx       uuid
);
COMMENT ON TABLE fx_quotes IS 'Locked conversion prices: executed exactly as quoted, once, before expires_at.';
CREATE INDEX fx_quotes_expires_at ON fx_quotes (expires_at);

-- Conversions record their second leg; usd_cents is the movement's USD value
-- at the mid rate when it happened, set only for movements that count towards
-- the sender's AML limits.
ALTER TABLE transactions
    ADD COLUMN to_currency      text REFERENCES currencies (code),
    ADD COLUMN converted_amount bigint CONSTRAINT transactions_converted_positive CHECK (converted_amount > 0),
    ADD COLUMN rate             numeric(30, 10),
    ADD COLUMN usd_cents        bigint CONSTRAINT transactions_usd_cents_non_negative CHECK (usd_cents >= 0),
    ADD CONSTRAINT transactions_conversion_complete CHECK (
        (tx_type = 'conversion') = (to_currency IS NOT NULL AND converted_amount IS NOT NULL AND rate IS NOT NULL));
-- The rolling AML windows read only the sender's last 24 hours through this
-- index, so their cost does not grow with the length of a user's history.
CREATE INDEX transactions_limits_window ON transactions (from_user_id, created_at)
    INCLUDE (usd_cents) WHERE usd_cents IS NOT NULL;

-- Fees -----------------------------------------------------------------------

DROP TABLE fee_schedule;
CREATE TABLE fee_bands (
    kind              text NOT NULL CONSTRAINT fee_bands_kind_known CHECK (kind IN ('send', 'withdraw', 'convert')),
    -- The band applies from this USD-equivalent amount (inclusive) up to the next band.
    from_usd_cents    bigint NOT NULL CONSTRAINT fee_bands_from_non_negative CHECK (from_usd_cents >= 0),
    rate              numeric(8, 6) NOT NULL CONSTRAINT fee_bands_rate_range CHECK (rate >= 0 AND rate < 1),
    min_fee_usd_cents bigint CONSTRAINT fee_bands_min_non_negative CHECK (min_fee_usd_cents >= 0),
    max_fee_usd_cents bigint CONSTRAINT fee_bands_max_non_negative CHECK (max_fee_usd_cents >= 0),
    PRIMARY KEY (kind, from_usd_cents),
    CONSTRAINT fee_bands_min_below_max CHECK (min_fee_usd_cents IS NULL OR max_fee_usd_cents IS NULL OR min_fee_usd_cents <= max_fee_usd_cents)
);
COMMENT ON TABLE fee_bands IS 'Tiered fees by USD-equivalent amount, per transaction kind: 2 % on small amounts down to 0.5 % on large ones.';
INSERT INTO fee_bands (kind, from_usd_cents, rate)
SELECT kind, band.from_usd_cents, band.rate
FROM (VALUES ('send'), ('withdraw'), ('convert')) AS k (kind)
CROSS JOIN (VALUES (0, 0.020), (1000, 0.015), (10000, 0.010), (100000, 0.005)) AS band (from_usd_cents, rate);

-- Compliance -------------------------------------------------------------------

CREATE TABLE compliance_tiers (
    kyc_status           text PRIMARY KEY CONSTRAINT compliance_tiers_status_known CHECK (kyc_status IN ('PENDING', 'VERIFIED', 'REJECTED')),
    can_transact         boolean NOT NULL,
    single_max_usd_cents bigint NOT NULL CONSTRAINT compliance_tiers_single_non_negative CHECK (single_max_usd_cents >= 0),
    -- Over a rolling 24 hours.
    daily_max_usd_cents  bigint NOT NULL CONSTRAINT compliance_tiers_daily_non_negative CHECK (daily_max_usd_cents >= 0),
    -- Outgoing movements per rolling hour.
    hourly_max_count     integer NOT NULL CONSTRAINT compliance_tiers_hourly_non_negative CHECK (hourly_max_count >= 0)
);
COMMENT ON TABLE compliance_tiers IS 'AML limits per KYC status, in USD equivalent.';
INSERT INTO compliance_tiers VALUES
    ('PENDING', true, 10000, 10000, 10),
    ('VERIFIED', true, 200000, 500000, 10),
    ('REJECTED', false, 0, 0, 0);

CREATE TABLE compliance_settings (
    singleton                 boolean PRIMARY KEY DEFAULT true CONSTRAINT compliance_settings_single_row CHECK (singleton),
    -- Movements of USD 900.00 to 1,000.00 (inclusive) ...
    structuring_min_usd_cents bigint NOT NULL,
    structuring_max_usd_cents bigint NOT NULL,
    -- ... this many within 24 hours open a SAR (the movement is allowed).
    structuring_count         integer NOT NULL CONSTRAINT compliance_settings_count_positive CHECK (structuring_count > 0),
    -- Lowest fuzzy-match score that counts as a sanctions hit.
    sanctions_threshold       numeric(4, 3) NOT NULL CONSTRAINT compliance_settings_threshold_range CHECK (sanctions_threshold > 0 AND sanctions_threshold <= 1)
);
INSERT INTO compliance_settings VALUES (true, 90000, 100000, 3, 0.900);

CREATE TABLE sanctions_entries (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL CONSTRAINT sanctions_entries_name_length CHECK (char_length(name) BETWEEN 1 AND 350),
    -- An E.164 number known to belong to the listed party, if any.
    phone      text,
    -- OFAC-SDN for the shipped list, or who added it (manual).
    source     text NOT NULL,
    -- The list's own id (OFAC ent_num) when it has one.
    ent_num    bigint,
    sdn_type   text,
    program    text,
    remarks    text,
    created_by uuid REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sanctions_entries_source_ent_num_key UNIQUE (source, ent_num)
);
COMMENT ON TABLE sanctions_entries IS 'Parties no one may pay or be paid by; names are matched fuzzily, phones exactly.';
CREATE INDEX sanctions_entries_phone ON sanctions_entries (phone) WHERE phone IS NOT NULL;

CREATE TABLE sanctions_list (
    singleton boolean PRIMARY KEY DEFAULT true CONSTRAINT sanctions_list_single_row CHECK (singleton),
    -- Bumped by every change to sanctions_entries; a user screened against an
    -- older version is screened again.
    version   bigint NOT NULL DEFAULT 1
);
INSERT INTO sanctions_list DEFAULT VALUES;

CREATE FUNCTION sanctions_entries_bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sanctions_list SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER sanctions_entries_changed AFTER INSERT OR UPDATE OR DELETE ON sanctions_entries
    FOR EACH STATEMENT EXECUTE FUNCTION sanctions_entries_bump_version();

-- The last screening of each user: against which list version, and the entry
-- they matched (NULL when clear).
ALTER TABLE users
    ADD COLUMN screened_list_version bigint NOT NULL DEFAULT 0,
    ADD COLUMN sanctions_match_id    bigint REFERENCES sanctions_entries (id);

CREATE TABLE sars (
    id         bigserial PRIMARY KEY,
    -- The party reported on; NULL for a refused registration (no user yet).
    user_id    uuid REFERENCES users (id),
    rule       text NOT NULL,
    status     text NOT NULL DEFAULT 'OPEN'
               CONSTRAINT sars_status_known CHECK (status IN ('OPEN', 'UNDER_REVIEW', 'FILED', 'DISMISSED')),
    -- The movements involved (attempted ones that were refused are in detail).
    tx_ids     uuid[] NOT NULL DEFAULT '{}',
    detail     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sars IS 'Suspicious-activity report cases: OPEN -> UNDER_REVIEW -> FILED | DISMISSED.';
-- While a case for a user and rule is open, new findings join it.
CREATE UNIQUE INDEX sars_one_open_case ON sars (user_id, rule) WHERE status IN ('OPEN', 'UNDER_REVIEW');
CREATE INDEX sars_status ON sars (status, id DESC);

CREATE TABLE sar_notes (
    id          bigserial PRIMARY KEY,
    sar_id      bigint NOT NULL REFERENCES sars (id),
    author_id   uuid REFERENCES users (id),
    from_status text NOT NULL,
    to_status   text NOT NULL,
    note        text NOT NULL CONSTRAINT sar_notes_note_length CHECK (char_length(note) <= 2000),
    at          timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sar_notes IS 'The review history of each SAR.';
CREATE INDEX sar_notes_sar ON sar_notes (sar_id, id);

-- Tamper-evident audit log ----------------------------------------------------

-- Audit rows waiting to be linked into the hash chain. Written in the same
-- transaction as the row; the sealer links them in commit-visible order, so
-- no money movement ever waits on a global chain head.
CREATE TABLE audit_pending (
    audit_id bigint PRIMARY KEY REFERENCES audit_log (id)
);

CREATE TABLE audit_chain (
    seq        bigint PRIMARY KEY,
    audit_id   bigint NOT NULL CONSTRAINT audit_chain_audit_id_key UNIQUE REFERENCES audit_log (id),
    -- entry_hash of seq - 1 (64 zeros for the first).
    prev_hash  text NOT NULL,
    -- SHA3-256(prev_hash ‖ canonical bytes of the audit row).
    entry_hash text NOT NULL,
    sealed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_chain IS 'Hash chain over the audit log: altering, removing or reordering any row breaks it.';
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION reject_modification();

-- TRUNCATE skips row triggers, so the append-only tables refuse it separately.
CREATE FUNCTION reject_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION reject_truncate();

-- A transaction's signed facts never change; only its status may advance.
CREATE FUNCTION transactions_only_status_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'transactions are append-only: DELETE refused' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.tx_id, NEW.seq, NEW.tx_type, NEW.amount, NEW.fee, NEW.currency, NEW.from_user_id, NEW.to_user_id,
        NEW.note, NEW.signature, NEW.created_at, NEW.to_currency, NEW.converted_amount, NEW.rate, NEW.usd_cents)
       IS DISTINCT FROM
       (OLD.tx_id, OLD.seq, OLD.tx_type, OLD.amount, OLD.fee, OLD.currency, OLD.from_user_id, OLD.to_user_id,
        OLD.note, OLD.signature, OLD.created_at, OLD.to_currency, OLD.converted_amount, OLD.rate, OLD.usd_cents) THEN
        RAISE EXCEPTION 'only the status of a transaction may change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER transactions_immutable_facts BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION transactions_only_status_changes();
