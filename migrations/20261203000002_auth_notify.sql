-- Every gateway instance remembers who tokens belong to (gateway/src/auth/cache.rs)
-- and forgets a user the moment a change that matters to authentication commits:
-- these triggers notify `chainpay_auth` with the user's id, whichever code path
-- made the change. None fires on the transfer path.

CREATE FUNCTION notify_auth_user() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chainpay_auth', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_auth_token() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chainpay_auth', NEW.user_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_auth_changed AFTER UPDATE ON users
    FOR EACH ROW
    WHEN (OLD.suspended IS DISTINCT FROM NEW.suspended
       OR OLD.token_epoch IS DISTINCT FROM NEW.token_epoch
       OR OLD.role IS DISTINCT FROM NEW.role
       OR OLD.kyc_status IS DISTINCT FROM NEW.kyc_status
       OR OLD.name IS DISTINCT FROM NEW.name
       OR OLD.phone IS DISTINCT FROM NEW.phone
       OR OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION notify_auth_user();

CREATE TRIGGER users_auth_deleted AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_auth_user();

CREATE TRIGGER revoked_tokens_auth AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_auth_token();
