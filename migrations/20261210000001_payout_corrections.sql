-- M-Pesa's results that contradict how a payout was settled, and their
-- four-eyes correction.
--
-- A result that contradicts a settled payout (paid after it was refunded,
-- failed after operators settled it as paid, paid under another receipt)
-- books nothing by itself: it is kept here, with the payout it is about and
-- what M-Pesa said, and reconciliation reports it until operators settle
-- it. One admin proposes to correct the payout as M-Pesa says (take back
-- amount and fee that were refunded, give back amount and fee of a payout
-- that was not made, record M-Pesa's receipt) or to dismiss the result
-- (checked against M-Pesa's statement, the settlement stands); a different
-- admin approves. The approval settles the contradiction it was proposed
-- for and the same payout's earlier ones of the same kind (M-Pesa sends a
-- result more than once).
CREATE TABLE payout_contradictions (
    id               bigserial PRIMARY KEY,
    withdrawal_ref   uuid NOT NULL REFERENCES mpesa_withdrawals (ref),
    kind             text NOT NULL CONSTRAINT payout_contradictions_kind_known
                     CHECK (kind IN ('PAID AFTER REFUND', 'FAILED AFTER PAID', 'PAID UNDER OTHER RECEIPT')),
    -- The receipt M-Pesa reports the payout paid under (its paid results).
    receipt          text,
    -- The receipt recorded on the payout when the result came.
    recorded_receipt text,
    -- What M-Pesa said: {"receipt"} or {"code", "desc"}.
    result           jsonb NOT NULL,
    found_at         timestamptz NOT NULL DEFAULT now(),
    -- What was reserved on the customer's account until it is settled (a
    -- payout paid after its refund owes amount and fee back).
    reserved         bigint NOT NULL DEFAULT 0 CONSTRAINT payout_contradictions_reserved_non_negative CHECK (reserved >= 0),
    -- The approved correction that settled it.
    correction_id    uuid
);
CREATE INDEX payout_contradictions_open ON payout_contradictions (id) WHERE correction_id IS NULL;
CREATE INDEX payout_contradictions_withdrawal ON payout_contradictions (withdrawal_ref);

CREATE TABLE payout_corrections (
    id               uuid PRIMARY KEY,
    contradiction_id bigint NOT NULL REFERENCES payout_contradictions (id),
    withdrawal_ref   uuid NOT NULL REFERENCES mpesa_withdrawals (ref),
    action           text NOT NULL CONSTRAINT payout_corrections_action_known CHECK (action IN ('CORRECT', 'DISMISS')),
    status           text NOT NULL DEFAULT 'PENDING'
                     CONSTRAINT payout_corrections_status_known CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    proposed_by      uuid NOT NULL REFERENCES users (id),
    proposal_note    text NOT NULL,
    decided_by       uuid REFERENCES users (id),
    decision_note    text,
    -- What an approved correction booked, when it moved money, and the
    -- payout or refund that had settled the payout before.
    correction_tx_id uuid REFERENCES transactions (tx_id),
    replaced_tx_id   uuid REFERENCES transactions (tx_id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    decided_at       timestamptz,
    -- Four eyes, held by the database as well as the server.
    CONSTRAINT payout_corrections_four_eyes CHECK (decided_by IS NULL OR decided_by <> proposed_by),
    CONSTRAINT payout_corrections_decided CHECK ((status = 'PENDING') = (decided_by IS NULL)),
    CONSTRAINT payout_corrections_booked CHECK (correction_tx_id IS NULL OR (status = 'APPROVED' AND action = 'CORRECT')),
    CONSTRAINT payout_corrections_replaced CHECK ((replaced_tx_id IS NULL) = (correction_tx_id IS NULL))
);
-- One proposal waiting per payout.
CREATE UNIQUE INDEX payout_corrections_live ON payout_corrections (withdrawal_ref) WHERE status = 'PENDING';
CREATE INDEX payout_corrections_status ON payout_corrections (status, created_at DESC);

ALTER TABLE payout_contradictions
    ADD CONSTRAINT payout_contradictions_correction FOREIGN KEY (correction_id) REFERENCES payout_corrections (id);

-- The contradictions already received, from the callbacks that brought
-- them (nothing was reserved for them, and the receipt recorded is the
-- payout's now): a B2C result names its payout; a
-- Transaction Status result names the query asked about it, and reports
-- the payout's receipt and status among its parameters.
INSERT INTO payout_contradictions (withdrawal_ref, kind, receipt, recorded_receipt, result, found_at)
SELECT w.ref, c.outcome, CASE WHEN c.outcome <> 'FAILED AFTER PAID' THEN said.receipt END, w.mpesa_receipt,
       -- As the gateway writes them: {receipt} or {code, desc}.
       CASE WHEN c.outcome <> 'FAILED AFTER PAID' THEN jsonb_build_object('receipt', coalesce(said.receipt, ''))
            WHEN c.kind = 'b2c_result'
            THEN jsonb_build_object(
                     'code', CASE WHEN c.body -> 'Result' ->> 'ResultCode' ~ '^-?[0-9]{1,9}$'
                                  THEN (c.body -> 'Result' ->> 'ResultCode')::bigint ELSE -1 END,
                     'desc', coalesce(c.body -> 'Result' ->> 'ResultDesc', ''))
            ELSE jsonb_build_object('code', -1, 'desc', 'M-Pesa reports the payout ' || coalesce(said.status, 'not paid')) END,
       c.received_at
  FROM mpesa_callbacks c
  CROSS JOIN LATERAL (SELECT
           CASE WHEN c.kind = 'b2c_result' THEN c.body -> 'Result' ->> 'OriginatorConversationID'
                ELSE (SELECT q.withdrawal_ref::text FROM mpesa_status_queries q
                       WHERE q.conversation_id = c.body -> 'Result' ->> 'ConversationID') END AS reference,
           CASE WHEN c.kind = 'b2c_result' THEN nullif(c.body -> 'Result' ->> 'TransactionID', '')
                ELSE nullif(jsonb_path_query_first(c.body,
                       '$.Result.ResultParameters.ResultParameter[*] ? (@.Key == "ReceiptNo").Value') #>> '{}', '') END AS receipt,
           jsonb_path_query_first(c.body,
               '$.Result.ResultParameters.ResultParameter[*] ? (@.Key == "TransactionStatus").Value') #>> '{}' AS status) said
  JOIN mpesa_withdrawals w ON w.ref::text = lower(said.reference)
 WHERE c.kind IN ('b2c_result', 'txstatus_result')
   AND c.outcome IN ('PAID AFTER REFUND', 'FAILED AFTER PAID', 'PAID UNDER OTHER RECEIPT')
 ORDER BY c.id;
