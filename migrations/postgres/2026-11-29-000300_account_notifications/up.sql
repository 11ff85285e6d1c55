-- Every change of an account is announced on the channel `gridlight_accounts` (payload: the
-- account's id), delivered at commit to every listening instance: each forgets the account from
-- its cache of authenticated accounts (src/db/accounts.rs), so a deactivation, a password or a
-- role change takes effect on the next request whichever instance serves it.
CREATE FUNCTION gridlight_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('gridlight_accounts', OLD.id);
    ELSE
        PERFORM pg_notify('gridlight_accounts', NEW.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_account_changed AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION gridlight_account_changed();
