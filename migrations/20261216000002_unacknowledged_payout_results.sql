-- A success M-Pesa reported for a payout whose acknowledgement never came
-- (so the result's conversation cannot be checked): it settles nothing, but
-- while it stands "no such transaction" answers never refund the payout
-- (mpesa::payout_status). The payout waits for Transaction Status to find
-- it, or for two operators.
ALTER TABLE mpesa_withdrawals ADD COLUMN reported_paid_receipt text;
