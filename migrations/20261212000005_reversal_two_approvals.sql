-- Four eyes on reversals. A customer's request is not an admin's: one
-- admin approving it alone could, with the customer, take money back from
-- any recipient within a day. The first approval is recorded here; the
-- correction is booked by a second, different admin's (admin_id) while the
-- first still stands (its admin still an admin in good standing, at most
-- three days old: reversals::FIRST_APPROVAL_HOURS). Rows approved before
-- this rule are left as they were (NOT VALID).
ALTER TABLE reversal_requests
    ADD COLUMN first_approved_by uuid REFERENCES users (id),
    ADD COLUMN first_approved_at timestamptz,
    ADD COLUMN first_note text CONSTRAINT reversal_requests_first_note_length CHECK (char_length(first_note) <= 500),
    ADD CONSTRAINT reversal_requests_two_approvers
        CHECK (status <> 'APPROVED'
               OR (admin_id IS NOT NULL AND first_approved_by IS NOT NULL AND first_approved_by <> admin_id)) NOT VALID;
