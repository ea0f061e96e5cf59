-- The operations desk: identity documents (encrypted), PIN resets,
-- reconciliation runs and their items, and M-Pesa recovery state.

-- Identity documents ----------------------------------------------------------
CREATE TABLE kyc_documents (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id),
    document_type text NOT NULL CONSTRAINT kyc_documents_type_known
                  CHECK (document_type IN ('national_id', 'passport', 'alien_id')),
    -- The number sealed with AES-256-GCM under the master key; never stored
    -- in the clear. `number_digest` (HMAC-SHA3-256 under a server key) finds
    -- one document claimed by two accounts; `number_hint` is what is shown.
    number_sealed bytea NOT NULL,
    number_digest bytea NOT NULL,
    number_hint   text NOT NULL CONSTRAINT kyc_documents_hint_length CHECK (char_length(number_hint) BETWEEN 1 AND 4),
    status        text NOT NULL DEFAULT 'PENDING'
                  CONSTRAINT kyc_documents_status_known CHECK (status IN ('PENDING', 'VERIFIED', 'REJECTED')),
    reviewed_by   uuid REFERENCES users (id),
    review_note   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    reviewed_at   timestamptz
);
CREATE INDEX kyc_documents_user ON kyc_documents (user_id, created_at DESC);
CREATE INDEX kyc_documents_status ON kyc_documents (status, created_at DESC);
-- One live claim per document: the same ID cannot verify two accounts.
CREATE UNIQUE INDEX kyc_documents_number_claimed ON kyc_documents (document_type, number_digest)
    WHERE status <> 'REJECTED';

-- PIN resets ------------------------------------------------------------------
-- One pending reset per user: a one-time code (only its HMAC is kept), sent
-- by SMS, used once through USSD "Forgot PIN" before it expires.
CREATE TABLE pin_resets (
    user_id     uuid PRIMARY KEY REFERENCES users (id),
    code_digest bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    issued_by   uuid NOT NULL REFERENCES users (id),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Reconciliation ----------------------------------------------------------------
CREATE TABLE reconciliation_runs (
    id            bigserial PRIMARY KEY,
    -- job, api or cli
    trigger       text NOT NULL CONSTRAINT reconciliation_runs_trigger_known CHECK (trigger IN ('job', 'api', 'cli')),
    requested_by  uuid REFERENCES users (id),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    -- Every check that ran, with how much it looked at.
    checks        jsonb NOT NULL DEFAULT '{}',
    discrepancies integer NOT NULL DEFAULT 0
);
CREATE INDEX reconciliation_runs_started ON reconciliation_runs (started_at DESC);

-- One finding of a run. Items that need a decision (money in suspense)
-- carry a resolution: proposed by one admin, executed by another.
CREATE TABLE reconciliation_items (
    id              bigserial PRIMARY KEY,
    run_id          bigint REFERENCES reconciliation_runs (id),
    category        text NOT NULL CONSTRAINT reconciliation_items_category_known
                    CHECK (category IN ('ledger', 'chain', 'audit', 'mpesa_deposit', 'mpesa_callback', 'mpesa_withdrawal',
                                        'mpesa_float', 'sms', 'suspense')),
    subject         text NOT NULL,
    detail          jsonb NOT NULL,
    -- OPEN; money in suspense (category suspense, no run) moves
    -- PROPOSED → RESOLVED (credited or refunded), or back to OPEN.
    status          text NOT NULL DEFAULT 'OPEN'
                    CONSTRAINT reconciliation_items_status_known CHECK (status IN ('OPEN', 'PROPOSED', 'RESOLVED')),
    resolution      text CONSTRAINT reconciliation_items_resolution_known CHECK (resolution IN ('credit', 'refund')),
    proposed_by     uuid REFERENCES users (id),
    proposal_note   text,
    resolved_by     uuid REFERENCES users (id),
    resolution_note text,
    tx_id           uuid REFERENCES transactions (tx_id),
    -- A refund's M-Pesa reversal receipt: one reversal refunds one payment.
    mpesa_reference text CONSTRAINT reconciliation_items_mpesa_reference_key UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    CONSTRAINT reconciliation_items_four_eyes CHECK (resolved_by IS NULL OR proposed_by IS NULL OR resolved_by <> proposed_by)
);
CREATE INDEX reconciliation_items_run ON reconciliation_items (run_id, id);
-- One suspense item per deposit, however often its money is looked at.
CREATE UNIQUE INDEX reconciliation_items_suspense ON reconciliation_items (subject) WHERE category = 'suspense';
CREATE INDEX reconciliation_items_suspense_status ON reconciliation_items (status, id) WHERE category = 'suspense';
-- Money already in suspense (mismatched payments) gets its item.
INSERT INTO reconciliation_items (category, subject, detail)
SELECT 'suspense', d.ref::text,
       jsonb_build_object('deposit', d.ref, 'amount', p.amount, 'currency', 'KES', 'reason', 'mismatch', 'receipt', d.mpesa_receipt)
FROM mpesa_deposits d
JOIN postings p ON p.tx_id = d.tx_id JOIN accounts a ON a.id = p.account_id AND a.kind = 'suspense'
WHERE d.status = 'SUSPENSE'
ON CONFLICT DO NOTHING;

-- Deposits: money held in suspense can be refunded to the payer; a
-- refunded receipt stays booked (never credited again).
ALTER TABLE mpesa_deposits DROP CONSTRAINT mpesa_deposits_status_known;
ALTER TABLE mpesa_deposits ADD CONSTRAINT mpesa_deposits_status_known
    CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'EXPIRED', 'DUPLICATE', 'SUSPENSE', 'REFUNDED'));
DROP INDEX mpesa_deposits_receipt_credited;
CREATE UNIQUE INDEX mpesa_deposits_receipt_credited ON mpesa_deposits (mpesa_receipt)
    WHERE status IN ('CONFIRMED', 'SUSPENSE', 'REFUNDED');

-- M-Pesa recovery ---------------------------------------------------------------
-- A B2C whose answer never came is resolved through Daraja's Transaction
-- Status API: when it was last asked, how often, and how many answers said
-- M-Pesa has no such transaction; every query's conversation, so an answer
-- to an earlier query still finds its payout.
ALTER TABLE mpesa_withdrawals
    ADD COLUMN status_queried_at timestamptz,
    ADD COLUMN status_queries integer NOT NULL DEFAULT 0,
    ADD COLUMN status_no_record integer NOT NULL DEFAULT 0;
CREATE TABLE mpesa_status_queries (
    conversation_id text PRIMARY KEY,
    withdrawal_ref  uuid NOT NULL REFERENCES mpesa_withdrawals (ref),
    asked_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX mpesa_status_queries_withdrawal ON mpesa_status_queries (withdrawal_ref);

-- Daraja's Account Balance answers, for the float check.
CREATE TABLE mpesa_balance_queries (
    id              bigserial PRIMARY KEY,
    conversation_id text CONSTRAINT mpesa_balance_queries_conversation_key UNIQUE,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    answered_at     timestamptz,
    -- The working account's available balance, KES cents.
    working_balance bigint,
    result_code     integer,
    result_desc     text,
    -- The books when the answer was recorded (same transaction): what they
    -- say M-Pesa holds, and the deposits and payouts still in flight.
    books_held          bigint,
    deposits_in_flight  bigint,
    payouts_in_flight   bigint
);

-- The simulator's shortcode (simulator only): an offset added to the
-- balance it works out from its own pushes and payouts (a planted mismatch
-- in tests), and a fault for B2C requests: lose_replies (paid, but neither
-- the acknowledgement nor the result reaches the gateway) or lose_request
-- (never arrives).
CREATE TABLE sim_daraja_account (
    singleton       boolean PRIMARY KEY DEFAULT true CONSTRAINT sim_daraja_account_single CHECK (singleton),
    offset_cents    bigint NOT NULL DEFAULT 0,
    b2c_fault       text CONSTRAINT sim_daraja_account_fault_known CHECK (b2c_fault IN ('lose_replies', 'lose_request'))
);
ALTER TABLE sim_daraja_b2c
    ADD COLUMN result_code integer,
    ADD COLUMN receipt text,
    ADD COLUMN deliver boolean NOT NULL DEFAULT true;
INSERT INTO sim_daraja_account VALUES (true, 0);

-- Agents (review of the first cut) --------------------------------------------
-- A cash-in's commission is paid from fee revenue: with a minimum it could
-- exceed the percentage on small amounts and reward splitting deposits or
-- cycling money through vouchers. The rate alone, on cash-ins of USD 5 or more.
UPDATE commission_bands SET min_usd_cents = NULL WHERE kind = 'cash_in';

-- One live issuance per bank reference, normalised by the server (upper
-- case, no spaces); a rejected proposal frees its reference for the right one.
ALTER TABLE treasury_issuances DROP CONSTRAINT treasury_issuances_reference_key;
CREATE UNIQUE INDEX treasury_issuances_reference_live ON treasury_issuances (reference) WHERE status <> 'REJECTED';
