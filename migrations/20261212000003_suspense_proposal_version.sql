-- Which proposal a suspense item holds: raised each time one is made. An
-- approval names the proposal its admin read, so a proposal sent back and
-- replaced (credit for refund, another reversal receipt) is never booked by
-- an approver who did not see it.
ALTER TABLE reconciliation_items ADD COLUMN proposal_version integer NOT NULL DEFAULT 0;
