-- A proposal whose payout M-Pesa's own result settled first is closed as
-- SUPERSEDED, decided by no one, in the transaction that settled the
-- payout: the queue holds only payouts still waiting for operators, and a
-- superseded proposal no longer holds its payout or its receipt.
ALTER TABLE payout_resolutions
    DROP CONSTRAINT payout_resolutions_status_known,
    ADD CONSTRAINT payout_resolutions_status_known
        CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'SUPERSEDED')),
    DROP CONSTRAINT payout_resolutions_decided,
    ADD CONSTRAINT payout_resolutions_decided
        CHECK ((status IN ('APPROVED', 'REJECTED')) = (decided_by IS NOT NULL)),
    ADD CONSTRAINT payout_resolutions_closed
        CHECK ((status = 'PENDING') = (decided_at IS NULL));

DROP INDEX payout_resolutions_live;
CREATE UNIQUE INDEX payout_resolutions_live ON payout_resolutions (withdrawal_ref)
    WHERE status IN ('PENDING', 'APPROVED');
DROP INDEX payout_resolutions_receipt_live;
CREATE UNIQUE INDEX payout_resolutions_receipt_live ON payout_resolutions (receipt)
    WHERE status IN ('PENDING', 'APPROVED');

-- Proposals already left waiting on a payout a result settled.
UPDATE payout_resolutions r
   SET status = 'SUPERSEDED', decided_at = now(),
       decision_note = 'M-Pesa''s result settled the payout first (' || w.status || ')'
  FROM mpesa_withdrawals w
 WHERE w.ref = r.withdrawal_ref AND r.status = 'PENDING' AND w.status <> 'PENDING';
