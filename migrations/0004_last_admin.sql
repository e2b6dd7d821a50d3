-- The last active administrator stays one, whoever asks and by whatever path: deleting the
-- account (by an admin or by itself), banning it, or taking its admin role. The rule lives
-- in the database so that it holds atomically under concurrency (two admins deleting each
-- other at once) and for every writer, the command line included. A violation aborts the
-- whole transaction with the message `edge_auth:last_admin`, which the store maps to a 409.
--
-- "Active" means holding `admin` and not banned now: a ban with no end, or whose end is
-- still ahead (the rule of `BanState::at`).

-- Taking the admin role from an active admin (also the first step of deleting the
-- account) when no other active admin would remain.
CREATE TRIGGER last_admin_keeps_role
BEFORE DELETE ON user_roles
WHEN OLD.role = 'admin'
  AND EXISTS (
    SELECT 1 FROM users u WHERE u.id = OLD.user_id
      AND (u.banned_at IS NULL OR (u.banned_until IS NOT NULL
           AND u.banned_until <= CAST(strftime('%s', 'now') AS INTEGER))))
  AND NOT EXISTS (
    SELECT 1 FROM user_roles r JOIN users u ON u.id = r.user_id
    WHERE r.role = 'admin' AND r.user_id != OLD.user_id
      AND (u.banned_at IS NULL OR (u.banned_until IS NOT NULL
           AND u.banned_until <= CAST(strftime('%s', 'now') AS INTEGER))))
BEGIN
  SELECT RAISE(ABORT, 'edge_auth:last_admin');
END;

-- Banning an active admin when no other active admin would remain.
CREATE TRIGGER last_admin_stays_unbanned
BEFORE UPDATE OF banned_at, banned_until ON users
WHEN NEW.banned_at IS NOT NULL
  AND (NEW.banned_until IS NULL OR NEW.banned_until > CAST(strftime('%s', 'now') AS INTEGER))
  AND (OLD.banned_at IS NULL OR (OLD.banned_until IS NOT NULL
       AND OLD.banned_until <= CAST(strftime('%s', 'now') AS INTEGER)))
  AND EXISTS (SELECT 1 FROM user_roles WHERE user_id = NEW.id AND role = 'admin')
  AND NOT EXISTS (
    SELECT 1 FROM user_roles r JOIN users u ON u.id = r.user_id
    WHERE r.role = 'admin' AND r.user_id != NEW.id
      AND (u.banned_at IS NULL OR (u.banned_until IS NOT NULL
           AND u.banned_until <= CAST(strftime('%s', 'now') AS INTEGER))))
BEGIN
  SELECT RAISE(ABORT, 'edge_auth:last_admin');
END;
