-- Roles carry permissions; accounts can be banned; an append-only audit log.
-- Seeds use INSERT OR IGNORE so re-running them changes nothing.

-- What a role may do. The Worker checks a route's permission against this table, so a
-- permission taken from a role stops working on the next request.
CREATE TABLE permissions (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
INSERT OR IGNORE INTO permissions (name, description) VALUES
    ('users:read', 'List, search and read accounts'),
    ('users:write', 'Change an account''s username, email and verification'),
    ('users:ban', 'Ban and unban accounts'),
    ('users:delete', 'Delete accounts'),
    ('roles:assign', 'Grant and remove roles'),
    ('sessions:read', 'List an account''s sessions'),
    ('sessions:revoke', 'Revoke an account''s sessions'),
    ('audit:read', 'Read the audit log');

CREATE TABLE role_permissions (
    role        TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    permission  TEXT NOT NULL REFERENCES permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (role, permission)
);
CREATE INDEX role_permissions_by_permission ON role_permissions (permission);
-- `user` (every account) holds no administrative permission; `admin` holds them all.
INSERT OR IGNORE INTO role_permissions (role, permission)
    SELECT 'admin', name FROM permissions;

-- Role lookups by role (counting admins, listing who holds a role).
CREATE INDEX user_roles_by_role ON user_roles (role);

-- Bans. `banned_at` NULL: not banned. Otherwise banned from `banned_at` until
-- `banned_until`, or indefinitely when `banned_until` is NULL. A ban whose `banned_until`
-- has passed is over; the columns stay until an unban or the next ban.
ALTER TABLE users ADD COLUMN banned_at INTEGER;
ALTER TABLE users ADD COLUMN banned_until INTEGER;
ALTER TABLE users ADD COLUMN ban_reason TEXT;

-- Who did what to whom, when, from where. Rows are only ever inserted; the scheduled
-- handler deletes those older than AUDIT_RETENTION_DAYS. No foreign keys: the record of an
-- account outlives the account. `details` is a JSON object and never holds a password, a
-- token or a full email address.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    occurred_at  INTEGER NOT NULL,
    -- user.signup, user.login, user.login_failed, user.banned, session.revoked, ...
    action       TEXT NOT NULL,
    -- The account that acted; NULL for an anonymous caller or the command line.
    actor_id     TEXT,
    -- The account acted upon; NULL when none is known (a login for an unknown account).
    target_id    TEXT,
    request_id   TEXT,
    ip           TEXT,
    colo         TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_by_time ON audit_log (occurred_at);
CREATE INDEX audit_log_by_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_by_target ON audit_log (target_id, id);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
