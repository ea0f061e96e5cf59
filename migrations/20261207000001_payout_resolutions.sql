-- A payout whose answer never came and that automatic recovery has not
-- settled within the hour is settled by operators from M-Pesa's own records
-- (the organisation portal's statement): one admin proposes what M-Pesa
-- shows (paid, with its receipt, or not paid), a different admin approves,
-- and the payout settles through the same once-only path as a B2C result.
CREATE TABLE payout_resolutions (
    id             uuid PRIMARY KEY,
    withdrawal_ref uuid NOT NULL REFERENCES mpesa_withdrawals (ref),
    outcome        text NOT NULL CONSTRAINT payout_resolutions_outcome_known CHECK (outcome IN ('PAID', 'NOT_PAID')),
    -- The payout's M-Pesa receipt, when M-Pesa shows it paid.
    receipt        text CONSTRAINT payout_resolutions_receipt_format CHECK (receipt ~ '^[A-Z0-9]{8,20}$'),
    status         text NOT NULL DEFAULT 'PENDING'
                   CONSTRAINT payout_resolutions_status_known CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    proposed_by    uuid NOT NULL REFERENCES users (id),
    proposal_note  text NOT NULL,
    decided_by     uuid REFERENCES users (id),
    decision_note  text,
    -- The payout or refund the approval booked.
    settle_tx_id   uuid REFERENCES transactions (tx_id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,
    -- Four eyes, held by the database as well as the server.
    CONSTRAINT payout_resolutions_four_eyes CHECK (decided_by IS NULL OR decided_by <> proposed_by),
    CONSTRAINT payout_resolutions_decided CHECK ((status = 'PENDING') = (decided_by IS NULL)),
    CONSTRAINT payout_resolutions_booked CHECK ((status = 'APPROVED') = (settle_tx_id IS NOT NULL)),
    CONSTRAINT payout_resolutions_receipt_when_paid CHECK ((outcome = 'PAID') = (receipt IS NOT NULL))
);
-- One live proposal per payout, and one payout per receipt.
CREATE UNIQUE INDEX payout_resolutions_live ON payout_resolutions (withdrawal_ref) WHERE status <> 'REJECTED';
CREATE UNIQUE INDEX payout_resolutions_receipt_live ON payout_resolutions (receipt) WHERE status <> 'REJECTED';
CREATE INDEX payout_resolutions_status ON payout_resolutions (status, created_at DESC);
