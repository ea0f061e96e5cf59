-- Transactions (journal entry headers) and their postings.

CREATE TABLE transactions (
    tx_id        uuid PRIMARY KEY,
    -- Commit order; the cursor of every transaction listing.
    seq          bigserial NOT NULL CONSTRAINT transactions_seq_key UNIQUE,
    tx_type      text NOT NULL CONSTRAINT transactions_type_known
                 CHECK (tx_type IN ('transfer', 'conversion', 'deposit', 'withdrawal', 'reversal', 'funding')),
    status       text NOT NULL DEFAULT 'COMPLETED'
                 CONSTRAINT transactions_status_known CHECK (status IN ('PENDING', 'COMPLETED', 'FAILED', 'REVERSED')),
    amount       bigint NOT NULL CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    fee          bigint NOT NULL DEFAULT 0 CONSTRAINT transactions_fee_non_negative CHECK (fee >= 0),
    currency     text NOT NULL REFERENCES currencies (code),
    from_user_id uuid REFERENCES users (id),
    to_user_id   uuid REFERENCES users (id),
    note         text CONSTRAINT transactions_note_length CHECK (char_length(note) <= 140),
    -- HMAC-SHA3-256 (hex) over the canonical bytes of the immutable fields.
    signature    text NOT NULL,
    created_at   timestamptz NOT NULL
);
COMMENT ON TABLE transactions IS 'One row per journal entry: who, what, how much; signed by the server.';
CREATE INDEX transactions_from_user_seq ON transactions (from_user_id, seq DESC) WHERE from_user_id IS NOT NULL;
CREATE INDEX transactions_to_user_seq ON transactions (to_user_id, seq DESC) WHERE to_user_id IS NOT NULL;

CREATE TABLE postings (
    id         bigserial PRIMARY KEY,
    tx_id      uuid NOT NULL REFERENCES transactions (tx_id),
    account_id bigint NOT NULL REFERENCES accounts (id),
    -- Signed change to the account's balance.
    amount     bigint NOT NULL CONSTRAINT postings_amount_non_zero CHECK (amount <> 0)
);
COMMENT ON TABLE postings IS 'The legs of each journal entry; they sum to zero per currency within a transaction.';
CREATE INDEX postings_account_id ON postings (account_id);
CREATE INDEX postings_tx_id ON postings (tx_id);

-- Postings are facts: mistakes are undone by new, correcting entries.
CREATE FUNCTION reject_modification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION reject_modification();

-- The database itself refuses to commit an unbalanced journal entry, whatever
-- the application does: checked once per transaction at commit time.
CREATE FUNCTION assert_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT a.currency INTO unbalanced
    FROM postings p JOIN accounts a ON a.id = p.account_id
    WHERE p.tx_id = NEW.tx_id
    GROUP BY a.currency
    HAVING sum(p.amount) <> 0
    LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'journal entry % does not balance in %', NEW.tx_id, unbalanced
            USING ERRCODE = 'check_violation', CONSTRAINT = 'postings_entry_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER transactions_entry_balanced AFTER INSERT ON transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION assert_entry_balanced();
