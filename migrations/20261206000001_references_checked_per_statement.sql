-- The hot path's references and the balance of each journal entry, checked
-- once per statement instead of once per row.
--
-- A foreign key checks every inserted row on its own: one query and one lock
-- on the parent row per reference. A posted transfer carries fourteen (its
-- currency, its two parties, each leg's transaction and account, its chain
-- entry, two texts, its queued audit row and its idempotency key's user), its
-- empty target currency still queues a trigger event, and the deferred
-- balance trigger ran one more query per transaction at commit. The locks on
-- shared parents (the KES currency row, a busy merchant) are held by every
-- concurrent transaction at once and so become multixacts.
--
-- The batch engine writes a whole batch in one statement, so here each table
-- checks its statement's new rows as one set (a transition table): the same
-- rules, one query per table per statement.
--
-- A check that takes no lock on the parent is sound only if a parent, once
-- visible, never goes away. Transactions and audit rows are append-only
-- already; users, accounts and currencies are from now on never deleted,
-- truncated or given a new key (triggers below, beside the application
-- role's missing DELETE). A parent another transaction has not committed yet
-- is not visible, so a row referring to it is refused, as a foreign key
-- refuses it.
--
-- The checks' queries take no parameters, so each connection plans them once,
-- sized by the first statement it checks: a first batch of thousands would
-- leave hash or merge joins over whole parent tables for every later batch of
-- one. Their functions therefore allow only nested loops (index look-ups per
-- new row, right for a batch of any size this gateway writes) and fix their
-- search_path.

CREATE FUNCTION raise_reference_violation(child text, constraint_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', child, constraint_name
        USING ERRCODE = 'foreign_key_violation', TABLE = child, CONSTRAINT = constraint_name;
END
$$;

ALTER TABLE transactions DROP CONSTRAINT transactions_currency_fkey,
                         DROP CONSTRAINT transactions_to_currency_fkey,
                         DROP CONSTRAINT transactions_from_user_id_fkey,
                         DROP CONSTRAINT transactions_to_user_id_fkey;
-- Each reference is its own anti-join (a NOT EXISTS inside a CASE or an OR
-- would be planned as a hashed scan of the whole parent table).
CREATE FUNCTION transactions_references_checked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    broken text;
BEGIN
    SELECT c INTO broken FROM (
        SELECT 'transactions_currency_fkey' AS c FROM new_transactions n
        WHERE NOT EXISTS (SELECT FROM public.currencies k WHERE k.code = n.currency)
        UNION ALL
        SELECT 'transactions_to_currency_fkey' FROM new_transactions n
        WHERE n.to_currency IS NOT NULL AND NOT EXISTS (SELECT FROM public.currencies k WHERE k.code = n.to_currency)
        UNION ALL
        SELECT 'transactions_from_user_id_fkey' FROM new_transactions n
        WHERE n.from_user_id IS NOT NULL AND NOT EXISTS (SELECT FROM public.users u WHERE u.id = n.from_user_id)
        UNION ALL
        SELECT 'transactions_to_user_id_fkey' FROM new_transactions n
        WHERE n.to_user_id IS NOT NULL AND NOT EXISTS (SELECT FROM public.users u WHERE u.id = n.to_user_id)
    ) s LIMIT 1;
    IF broken IS NOT NULL THEN
        PERFORM public.raise_reference_violation('transactions', broken);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER transactions_references AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION transactions_references_checked();

-- Postings: their transaction and account exist, and every transaction they
-- add to balances in each currency. A journal entry's legs are therefore
-- written in one statement (the ledger and the batch engine both do), and a
-- leg added to an old entry later is refused unless it keeps it balanced.
ALTER TABLE postings DROP CONSTRAINT postings_tx_id_fkey,
                     DROP CONSTRAINT postings_account_id_fkey;
DROP TRIGGER transactions_entry_balanced ON transactions;
DROP FUNCTION assert_entry_balanced();
CREATE FUNCTION postings_checked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    broken text;
    unbalanced record;
BEGIN
    SELECT c INTO broken FROM (
        SELECT 'postings_tx_id_fkey' AS c FROM new_postings n
        WHERE NOT EXISTS (SELECT FROM public.transactions t WHERE t.tx_id = n.tx_id)
        UNION ALL
        SELECT 'postings_account_id_fkey' FROM new_postings n
        WHERE NOT EXISTS (SELECT FROM public.accounts a WHERE a.id = n.account_id)
    ) s LIMIT 1;
    IF broken IS NOT NULL THEN
        PERFORM public.raise_reference_violation('postings', broken);
    END IF;
    SELECT p.tx_id, a.currency INTO unbalanced
    FROM (SELECT DISTINCT tx_id FROM new_postings) n
    JOIN public.postings p ON p.tx_id = n.tx_id
    JOIN public.accounts a ON a.id = p.account_id
    GROUP BY p.tx_id, a.currency
    HAVING sum(p.amount) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %', unbalanced.tx_id, unbalanced.currency
            USING ERRCODE = 'check_violation', CONSTRAINT = 'postings_entry_balanced';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER postings_references AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION postings_checked();

-- The rows queued beside a movement refer to one parent by one column, which
-- never changes once written.
CREATE FUNCTION transaction_reference_checked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    IF EXISTS (SELECT FROM new_rows n WHERE n.tx_id IS NOT NULL
               AND NOT EXISTS (SELECT FROM public.transactions t WHERE t.tx_id = n.tx_id)) THEN
        PERFORM public.raise_reference_violation(TG_TABLE_NAME, TG_TABLE_NAME || '_tx_id_fkey');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION reject_reference_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % a row of % refers to never changes', TG_ARGV[0], TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

ALTER TABLE chain_pending DROP CONSTRAINT chain_pending_tx_id_fkey;
CREATE TRIGGER chain_pending_references AFTER INSERT ON chain_pending
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION transaction_reference_checked();
CREATE TRIGGER chain_pending_reference_fixed BEFORE UPDATE OF tx_id ON chain_pending
    FOR EACH ROW WHEN (OLD.tx_id IS DISTINCT FROM NEW.tx_id) EXECUTE FUNCTION reject_reference_change('transaction');

ALTER TABLE sms_outbox DROP CONSTRAINT sms_outbox_tx_id_fkey;
CREATE TRIGGER sms_outbox_references AFTER INSERT ON sms_outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION transaction_reference_checked();
CREATE TRIGGER sms_outbox_reference_fixed BEFORE UPDATE OF tx_id ON sms_outbox
    FOR EACH ROW WHEN (OLD.tx_id IS DISTINCT FROM NEW.tx_id) EXECUTE FUNCTION reject_reference_change('transaction');

ALTER TABLE audit_pending DROP CONSTRAINT audit_pending_audit_id_fkey;
CREATE FUNCTION audit_pending_references_checked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    IF EXISTS (SELECT FROM new_rows n WHERE NOT EXISTS (SELECT FROM public.audit_log a WHERE a.id = n.audit_id)) THEN
        PERFORM public.raise_reference_violation('audit_pending', 'audit_pending_audit_id_fkey');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_pending_references AFTER INSERT ON audit_pending
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_references_checked();
CREATE TRIGGER audit_pending_reference_fixed BEFORE UPDATE OF audit_id ON audit_pending
    FOR EACH ROW WHEN (OLD.audit_id IS DISTINCT FROM NEW.audit_id) EXECUTE FUNCTION reject_reference_change('audit row');

-- Idempotency keys are claimed a batch at a time, in one statement.
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_user_id_fkey;
CREATE FUNCTION idempotency_keys_references_checked() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    IF EXISTS (SELECT FROM new_rows n WHERE NOT EXISTS (SELECT FROM public.users u WHERE u.id = n.user_id)) THEN
        PERFORM public.raise_reference_violation('idempotency_keys', 'idempotency_keys_user_id_fkey');
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER idempotency_keys_references AFTER INSERT ON idempotency_keys
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION idempotency_keys_references_checked();
CREATE TRIGGER idempotency_keys_reference_fixed BEFORE UPDATE OF user_id ON idempotency_keys
    FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id) EXECUTE FUNCTION reject_reference_change('user');

-- The parents those checks rely on are never removed or rekeyed.
CREATE FUNCTION reject_parent_removal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are referred to by the ledger: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER users_kept BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER users_key_kept BEFORE UPDATE OF id ON users
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER users_no_truncate BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER accounts_key_kept BEFORE UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER currencies_kept BEFORE DELETE ON currencies
    FOR EACH ROW EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER currencies_key_kept BEFORE UPDATE OF code ON currencies
    FOR EACH ROW WHEN (OLD.code IS DISTINCT FROM NEW.code) EXECUTE FUNCTION reject_parent_removal();
CREATE TRIGGER currencies_no_truncate BEFORE TRUNCATE ON currencies
    FOR EACH STATEMENT EXECUTE FUNCTION reject_parent_removal();
