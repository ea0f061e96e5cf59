-- The USSD and SMS channels (Africa's Talking) and customer reversal requests.

ALTER TABLE users
    ADD COLUMN language text NOT NULL DEFAULT 'en' CONSTRAINT users_language_known CHECK (language IN ('en', 'sw'));

CREATE TABLE ussd_sessions (
    -- Africa's Talking's sessionId.
    session_id text PRIMARY KEY CONSTRAINT ussd_sessions_id_length CHECK (char_length(session_id) BETWEEN 1 AND 100),
    phone      text NOT NULL,
    -- The menu machine's state (never a PIN: see core::ussd).
    state      jsonb NOT NULL,
    -- Inputs consumed so far; a request with no new input is a retry.
    step       integer NOT NULL CONSTRAINT ussd_sessions_step_non_negative CHECK (step >= 0),
    -- The screen last sent, replayed to a retried request.
    last_reply text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ussd_sessions IS 'USSD sessions in progress, so any instance can serve any step and a restart loses none.';
CREATE INDEX ussd_sessions_updated_at ON ussd_sessions (updated_at);

CREATE TABLE sms_outbox (
    id            bigserial PRIMARY KEY,
    to_phone      text NOT NULL,
    message       text NOT NULL CONSTRAINT sms_outbox_message_length CHECK (char_length(message) BETWEEN 1 AND 918),
    -- QUEUED → SENT (accepted by Africa's Talking) → DELIVERED | FAILED;
    -- REJECTED when AT refuses it for good; QUEUED again after a retryable error.
    status        text NOT NULL DEFAULT 'QUEUED'
                  CONSTRAINT sms_outbox_status_known CHECK (status IN ('QUEUED', 'SENT', 'DELIVERED', 'FAILED', 'REJECTED')),
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- What Africa's Talking said: its messageId and per-recipient status.
    at_message_id text CONSTRAINT sms_outbox_at_message_id_key UNIQUE,
    at_status     text,
    at_status_code integer,
    failure_reason text,
    -- The movement that caused it, if any.
    tx_id         uuid REFERENCES transactions (tx_id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    delivered_at  timestamptz
);
COMMENT ON TABLE sms_outbox IS 'Transactional outbox: written with the movement, sent by the worker, updated by delivery reports.';
CREATE INDEX sms_outbox_due ON sms_outbox (next_attempt_at) WHERE status = 'QUEUED';
CREATE INDEX sms_outbox_to_phone ON sms_outbox (to_phone, id DESC);

CREATE TABLE sms_inbound (
    -- Africa's Talking's id: a retried callback is recognised by it.
    at_id       text PRIMARY KEY,
    from_phone  text NOT NULL,
    to_code     text NOT NULL,
    -- Only the command word is kept (never free text, which could hold a PIN).
    command     text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sms_inbound IS 'Inbound SMS commands already answered.';

CREATE TABLE reversal_requests (
    id           uuid PRIMARY KEY,
    tx_id        uuid NOT NULL REFERENCES transactions (tx_id),
    requester_id uuid NOT NULL REFERENCES users (id),
    reason       text NOT NULL CONSTRAINT reversal_requests_reason_length CHECK (char_length(reason) BETWEEN 3 AND 500),
    status       text NOT NULL DEFAULT 'PENDING'
                 CONSTRAINT reversal_requests_status_known CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    admin_id     uuid REFERENCES users (id),
    admin_note   text,
    -- The correcting entry, once approved.
    reversal_tx_id uuid REFERENCES transactions (tx_id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    reviewed_at  timestamptz
);
COMMENT ON TABLE reversal_requests IS 'Customers ask, operators decide; an approval posts a correcting entry.';
-- One live request per transaction.
CREATE UNIQUE INDEX reversal_requests_one_live ON reversal_requests (tx_id) WHERE status IN ('PENDING', 'APPROVED');
CREATE INDEX reversal_requests_status ON reversal_requests (status, created_at DESC);

-- Records of the Africa's Talking simulator (only used when no AT
-- credentials are configured): what it was asked to send.
CREATE TABLE sim_at_messages (
    message_id  text PRIMARY KEY,
    username    text NOT NULL,
    to_phone    text NOT NULL,
    sender      text,
    message     text NOT NULL,
    status_code integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
