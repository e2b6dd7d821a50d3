-- The last active administrator stays one, whoever asks and by whatever path: deleting the
-- account (by an admin or by itself), banning it, or taking its admin role. The rule lives
-- in the database so that it holds atomically under concurrency (two admins deleting each
-- other at once) and for every writer, the command line included. A violation aborts the
-- whole transaction with the message `edge_auth:last_admin`, which the store maps to a 409.

-- Accounts that hold `admin` and are not banned now: no ban, or one whose end has passed
-- (the rule of `BanState::at`). Evaluated when read, so an ending ban needs no job.
CREATE VIEW active_admins AS
SELECT r.user_id FROM user_roles r JOIN users u ON u.id = r.user_id
WHERE r.role = 'admin'
  AND (u.banned_at IS NULL
       OR (u.banned_until IS NOT NULL
           AND u.banned_until <= CAST(strftime('%s', 'now') AS INTEGER)));

-- Taking the admin role from an active admin (also the first step of deleting the
-- account) when no other active admin would remain.
CREATE TRIGGER last_admin_keeps_role
BEFORE DELETE ON user_roles
WHEN OLD.role = 'admin'
  AND OLD.user_id IN (SELECT user_id FROM active_admins)
  AND NOT EXISTS (SELECT 1 FROM active_admins WHERE user_id != OLD.user_id)
BEGIN
  SELECT RAISE(ABORT, 'edge_auth:last_admin');
END;

-- Banning an active admin (a ban with no end, or one that ends later) when no other active
-- admin would remain.
CREATE TRIGGER last_admin_stays_unbanned
BEFORE UPDATE OF banned_at, banned_until ON users
WHEN NEW.banned_at IS NOT NULL
  AND (NEW.banned_until IS NULL OR NEW.banned_until > CAST(strftime('%s', 'now') AS INTEGER))
  AND NEW.id IN (SELECT user_id FROM active_admins)
  AND NOT EXISTS (SELECT 1 FROM active_admins WHERE user_id != NEW.id)
BEGIN
  SELECT RAISE(ABORT, 'edge_auth:last_admin');
END;
