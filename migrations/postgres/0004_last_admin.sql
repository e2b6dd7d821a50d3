-- PostgreSQL twin of migrations/0004_last_admin.sql. The last active administrator stays
-- one, whoever asks and by whatever path: deleting the account (by an admin or by itself),
-- banning it, or taking its admin role. The rule lives in the database so that it holds
-- atomically under concurrency (two admins deleting each other at once) and for every
-- writer, the command line included. A violation raises an exception whose message is
-- `edge_auth:last_admin` with its own SQLSTATE, EA001, by which the store maps it to a 409
-- (never by the message); the whole transaction is then aborted.

-- Accounts that hold `admin` and are not banned now: no ban, or one whose end has passed
-- (the rule of `BanState::at`). Evaluated when read, so an ending ban needs no job. "Now" is
-- the statement's start in whole unix seconds, as SQLite's strftime('%s', 'now').
CREATE VIEW active_admins AS
SELECT r.user_id FROM user_roles r JOIN users u ON u.id = r.user_id
WHERE r.role = 'admin'
  AND (u.banned_at IS NULL
       OR (u.banned_until IS NOT NULL
           AND u.banned_until <= floor(extract(epoch FROM statement_timestamp()))::bigint));

-- Refuse, unless another active admin than `leaving` remains.
--
-- Concurrency. A plain check is not enough on PostgreSQL: under READ COMMITTED two
-- transactions, each removing a different one of the last two admins, would each still see
-- the other admin (the other's change is not committed yet), both pass, and both commit,
-- leaving none. So the check first takes a transaction-scoped advisory lock that every
-- removal of an admin takes: the second transaction waits until the first commits or rolls
-- back, and its check (a new statement, so a new snapshot under READ COMMITTED) then sees
-- the first one's removal and refuses. The lock is held to the end of the transaction and
-- is taken only when the account concerned holds `admin`, so ordinary writes never wait
-- on it.
--
-- The check itself reads without row locks on purpose: locking the other admins' rows
-- (SELECT ... FOR UPDATE/SHARE) would deadlock with a transaction that already holds the
-- row it is removing and waits for the advisory lock.
--
-- Isolation levels: READ COMMITTED (PostgreSQL's default) as above. Under SERIALIZABLE the
-- second transaction fails, with this exception or with 40001 (serialization failure).
-- Under REPEATABLE READ the lock cannot help: every statement reads the transaction's first
-- snapshot, taken before the wait, so both removals would pass. Removing an admin at that
-- level is therefore refused outright (SQLSTATE 0A000) rather than left unsafe.
CREATE FUNCTION last_admin_refuse_unless_another(leaving uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- Only an account holding `admin` can be the last admin: anything else needs no lock.
    IF NOT EXISTS (SELECT 1 FROM user_roles WHERE user_id = leaving AND role = 'admin') THEN
        RETURN;
    END IF;
    IF current_setting('transaction_isolation') = 'repeatable read' THEN
        RAISE EXCEPTION 'edge_auth: removing an administrator needs READ COMMITTED or SERIALIZABLE isolation'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('edge_auth:last_admin'));
    -- Evaluated after the lock: whatever committed meanwhile is seen. Rows this statement
    -- already removed (a multi-row DELETE) are seen too.
    IF leaving IN (SELECT user_id FROM active_admins)
       AND NOT EXISTS (SELECT 1 FROM active_admins WHERE user_id <> leaving) THEN
        RAISE EXCEPTION 'edge_auth:last_admin'
            USING ERRCODE = 'EA001', DETAIL = 'The last active administrator cannot be deleted, banned or demoted.';
    END IF;
END;
$$;

-- Taking the admin role from an active admin (also the first step of deleting the
-- account) when no other active admin would remain. Also covers an UPDATE that moves the
-- row away from `admin` or to another account.
CREATE FUNCTION last_admin_keeps_role() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.role = 'admin'
       AND (TG_OP = 'DELETE' OR NEW.role IS DISTINCT FROM 'admin' OR NEW.user_id <> OLD.user_id) THEN
        PERFORM last_admin_refuse_unless_another(OLD.user_id);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER last_admin_keeps_role
BEFORE DELETE OR UPDATE OF role, user_id ON user_roles
FOR EACH ROW EXECUTE FUNCTION last_admin_keeps_role();

-- Banning an active admin (a ban with no end, or one that ends later) when no other active
-- admin would remain.
CREATE FUNCTION last_admin_stays_unbanned() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM last_admin_refuse_unless_another(OLD.id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER last_admin_stays_unbanned
BEFORE UPDATE OF banned_at, banned_until ON users
FOR EACH ROW
WHEN (NEW.banned_at IS NOT NULL
      AND (NEW.banned_until IS NULL
           OR NEW.banned_until > floor(extract(epoch FROM statement_timestamp()))::bigint))
EXECUTE FUNCTION last_admin_stays_unbanned();

-- Deleting the account of the last active admin. On D1 the cascade to user_roles is caught
-- by the trigger above; on PostgreSQL the cascade runs after the users row is gone, when it
-- no longer counts as an active admin, so the account's own deletion is checked here.
CREATE FUNCTION last_admin_keeps_account() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM last_admin_refuse_unless_another(OLD.id);
    RETURN OLD;
END;
$$;
CREATE TRIGGER last_admin_keeps_account
BEFORE DELETE ON users
FOR EACH ROW EXECUTE FUNCTION last_admin_keeps_account();
