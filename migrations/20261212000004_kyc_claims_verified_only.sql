-- A document number is held only once it verifies an account. A pending
-- claim held the number too, so anyone could submit a victim's ID number
-- and keep the victim from submitting their own until an operator rejected
-- the squatter. Pending claims of one number now coexist (reviewers see
-- how many others claim it); verifying a second account with it is refused.
DROP INDEX kyc_documents_number_claimed;
CREATE UNIQUE INDEX kyc_documents_number_verified ON kyc_documents (document_type, number_digest)
    WHERE status = 'VERIFIED';
CREATE INDEX kyc_documents_number ON kyc_documents (document_type, number_digest)
    WHERE status <> 'REJECTED';
