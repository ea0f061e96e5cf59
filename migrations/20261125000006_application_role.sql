-- The role the running gateway acts as.
--
-- Migrations run as the database owner; every pooled connection of the
-- gateway then switches to `chainpay_app` (SET ROLE), which owns nothing. It
-- can read and write what the product needs, but it cannot UPDATE, DELETE or
-- TRUNCATE the append-only tables, and, not being their owner, it cannot
-- disable their triggers either. The triggers stop even the owner; the
-- missing privileges stop the application from trying.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        CREATE ROLE chainpay_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    -- The migrating user must be able to switch to it.
    IF NOT pg_has_role(current_user, 'chainpay_app', 'MEMBER') THEN
        EXECUTE format('GRANT chainpay_app TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'cannot create or grant role chainpay_app (%); the gateway will run as %', SQLERRM, current_user;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chainpay_app') THEN
        EXECUTE 'GRANT USAGE ON SCHEMA public TO chainpay_app';
        EXECUTE 'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chainpay_app';
        EXECUTE 'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chainpay_app';
        -- Facts are written once.
        EXECUTE 'REVOKE UPDATE, DELETE ON audit_log, audit_chain, postings, currencies FROM chainpay_app';
        EXECUTE 'REVOKE DELETE ON transactions, users, accounts FROM chainpay_app';
        EXECUTE 'REVOKE UPDATE ON transactions FROM chainpay_app';
        EXECUTE 'GRANT UPDATE (status) ON transactions TO chainpay_app';
        IF to_regclass('_sqlx_migrations') IS NOT NULL THEN
            EXECUTE 'REVOKE INSERT, UPDATE, DELETE ON _sqlx_migrations FROM chainpay_app';
        END IF;
        -- Tables and sequences of later migrations get the same grants; a
        -- migration that adds an append-only table revokes what it must.
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chainpay_app';
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO chainpay_app';
    END IF;
END
$$;
