-- M-Pesa (Safaricom Daraja): STK Push deposits and B2C withdrawals.

-- Two new kinds of movement: the settlement of a payout hold to the M-Pesa
-- float, and the refund of a payout that did not go through.
ALTER TABLE transactions DROP CONSTRAINT transactions_type_known;
ALTER TABLE transactions ADD CONSTRAINT transactions_type_known
    CHECK (tx_type IN ('transfer', 'conversion', 'deposit', 'withdrawal', 'reversal', 'funding', 'payout', 'refund'));

CREATE TABLE mpesa_deposits (
    -- Our idempotency reference, recorded before Safaricom is called.
    ref                 uuid PRIMARY KEY,
    user_id             uuid NOT NULL REFERENCES users (id),
    -- 2547XXXXXXXX, the number prompted.
    phone               text NOT NULL,
    -- KES cents; always whole shillings.
    amount              bigint NOT NULL CONSTRAINT mpesa_deposits_amount_whole CHECK (amount > 0 AND amount % 100 = 0),
    -- PENDING → CONFIRMED | FAILED | EXPIRED; DUPLICATE for a receipt already
    -- credited; SUSPENSE when the money arrived but did not match (held for review).
    status              text NOT NULL DEFAULT 'PENDING'
                        CONSTRAINT mpesa_deposits_status_known
                        CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'EXPIRED', 'DUPLICATE', 'SUSPENSE')),
    merchant_request_id text,
    checkout_request_id text CONSTRAINT mpesa_deposits_checkout_key UNIQUE,
    mpesa_receipt       text,
    result_code         integer,
    result_desc         text,
    -- The credit (to the wallet, or to suspense).
    tx_id               uuid REFERENCES transactions (tx_id),
    query_attempts      integer NOT NULL DEFAULT 0,
    last_query_at       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    settled_at          timestamptz
);
COMMENT ON TABLE mpesa_deposits IS 'STK Push deposits and their state; each credits a wallet at most once.';
-- A receipt credits once, whichever deposit it arrives on.
CREATE UNIQUE INDEX mpesa_deposits_receipt_credited ON mpesa_deposits (mpesa_receipt) WHERE status IN ('CONFIRMED', 'SUSPENSE');
CREATE INDEX mpesa_deposits_pending ON mpesa_deposits (created_at) WHERE status = 'PENDING';
CREATE INDEX mpesa_deposits_user ON mpesa_deposits (user_id, created_at DESC);

CREATE TABLE mpesa_withdrawals (
    -- Our reference, sent as the OriginatorConversationID.
    ref             uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    phone           text NOT NULL,
    amount          bigint NOT NULL CONSTRAINT mpesa_withdrawals_amount_whole CHECK (amount > 0 AND amount % 100 = 0),
    fee             bigint NOT NULL CONSTRAINT mpesa_withdrawals_fee_non_negative CHECK (fee >= 0),
    -- PENDING (money held) → COMPLETED (paid out) | FAILED (refunded).
    status          text NOT NULL DEFAULT 'PENDING'
                    CONSTRAINT mpesa_withdrawals_status_known CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED')),
    conversation_id text CONSTRAINT mpesa_withdrawals_conversation_key UNIQUE,
    mpesa_receipt   text,
    result_code     integer,
    result_desc     text,
    -- The hold (wallet → payout hold) and its settlement or refund.
    hold_tx_id      uuid NOT NULL REFERENCES transactions (tx_id),
    -- When the B2C request was sent (once only: a payout is never re-sent).
    submitted_at    timestamptz,
    settle_tx_id    uuid REFERENCES transactions (tx_id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz
);
COMMENT ON TABLE mpesa_withdrawals IS 'B2C payouts: money held at request, settled or refunded exactly once by the result.';

-- Every callback as received (minus nothing secret: Daraja sends none), for
-- reconciliation with Safaricom's statements.
CREATE TABLE mpesa_callbacks (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL,
    reference   text,
    body        jsonb NOT NULL,
    outcome     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER mpesa_callbacks_append_only BEFORE UPDATE OR DELETE ON mpesa_callbacks
    FOR EACH ROW EXECUTE FUNCTION reject_modification();

-- The Daraja simulator's records (used only when no Daraja credentials are configured).
CREATE TABLE sim_daraja_tokens (
    token      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE TABLE sim_daraja_pushes (
    checkout_request_id text PRIMARY KEY,
    merchant_request_id text NOT NULL,
    shortcode           text NOT NULL,
    phone               text NOT NULL,
    amount              bigint NOT NULL,
    callback_url        text NOT NULL,
    -- PENDING until the simulated customer answers; then the ResultCode.
    status              text NOT NULL DEFAULT 'PENDING',
    result_code         integer,
    result_desc         text,
    mpesa_receipt       text,
    settle_at           timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sim_daraja_b2c (
    conversation_id            text PRIMARY KEY,
    originator_conversation_id text NOT NULL,
    phone                      text NOT NULL,
    amount                     bigint NOT NULL,
    result_url                 text NOT NULL,
    timeout_url                text NOT NULL,
    status                     text NOT NULL DEFAULT 'PENDING',
    settle_at                  timestamptz NOT NULL,
    created_at                 timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'REVOKE UPDATE, DELETE ON mpesa_callbacks FROM chainpay_app';
    END IF;
END
$$;
