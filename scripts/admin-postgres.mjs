// The admin command line on PostgreSQL (DATABASE=postgres): grants or revokes the admin role
// of an existing account in DATABASE_URL's database, in one transaction with its audit entry,
// exactly as scripts/admin.sh does on D1. The database's last-admin rule binds it too.
//
//   DATABASE_URL=postgres://... node scripts/admin-postgres.mjs <grant|revoke> <username> [--print-sql]
//
// Exit status as scripts/admin.sh: 0 done (or nothing to do), 1 no such account (or the
// database failed), 2 usage error, 3 refused: the account is the last active admin.
import pg from "pg";

/** SQLSTATE the last-admin triggers raise (migrations/postgres/0004_last_admin.sql). */
const LAST_ADMIN = "EA001";

const STATE = `SELECT (SELECT COUNT(*) FROM users WHERE username = $1)::int AS found,
  (SELECT COUNT(*) FROM user_roles r JOIN users u ON u.id = r.user_id
    WHERE r.role = 'admin' AND u.username = $1)::int AS admin`;

const CHANGES = {
  grant: [
    `INSERT INTO audit_log (occurred_at, action, target_id, details)
       SELECT EXTRACT(EPOCH FROM now())::bigint, 'user.role_granted', id,
         '{"role":"admin","via":"command_line"}' FROM users
       WHERE username = $1 AND id NOT IN (SELECT user_id FROM user_roles WHERE role = 'admin')`,
    `INSERT INTO user_roles (user_id, role, granted_at)
       SELECT id, 'admin', EXTRACT(EPOCH FROM now())::bigint FROM users WHERE username = $1
       ON CONFLICT DO NOTHING`,
  ],
  revoke: [
    `INSERT INTO audit_log (occurred_at, action, target_id, details)
       SELECT EXTRACT(EPOCH FROM now())::bigint, 'user.role_revoked', id,
         '{"role":"admin","via":"command_line"}' FROM users
       WHERE username = $1 AND id IN (SELECT user_id FROM user_roles WHERE role = 'admin')`,
    `DELETE FROM user_roles WHERE role = 'admin'
       AND user_id IN (SELECT id FROM users WHERE username = $1)`,
  ],
};

function usage() {
  console.error("usage: DATABASE_URL=... node scripts/admin-postgres.mjs <grant|revoke> <username> [--print-sql]");
  process.exit(2);
}

const [action, rawName, ...rest] = process.argv.slice(2);
if (!(action in CHANGES) || !rawName || rest.some((arg) => arg !== "--print-sql")) usage();
// As on D1: exactly what signup accepts, stored lower-case. (Bound as a parameter here.)
if (!/^[A-Za-z0-9_]{3,42}$/.test(rawName)) {
  console.error(`admin: '${rawName}' is not a username (3-42 letters, digits or underscores)`);
  process.exit(2);
}
const username = rawName.toLowerCase();
if (rest.includes("--print-sql")) {
  console.log([STATE, ...CHANGES[action], STATE].map((sql) => `${sql};`).join("\n"));
  process.exit(0);
}
if (!process.env.DATABASE_URL) {
  console.error("admin: DATABASE=postgres needs DATABASE_URL (the server the Worker's Hyperdrive reaches)");
  process.exit(2);
}

const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
let status = 0;
try {
  await client.connect();
  await client.query("BEGIN");
  const before = (await client.query(STATE, [username])).rows[0];
  for (const sql of CHANGES[action]) await client.query(sql, [username]);
  const after = (await client.query(STATE, [username])).rows[0];
  await client.query("COMMIT");
  if (!after.found) {
    console.error(`admin: no account named ${username} in the PostgreSQL database; nothing changed`);
    status = 1;
  } else if (action === "grant") {
    console.log(before.admin !== after.admin ? `${username} is now an admin (postgres)` : `${username} was already an admin; nothing changed (postgres)`);
  } else {
    console.log(before.admin !== after.admin ? `${username} is no longer an admin (postgres)` : `${username} was not an admin; nothing changed (postgres)`);
  }
} catch (error) {
  await client.query("ROLLBACK").catch(() => {});
  if (error.code === LAST_ADMIN) {
    console.error(`admin: ${username} is the last active admin; grant admin to another account first; nothing changed (postgres)`);
    status = 3;
  } else {
    console.error(`admin: PostgreSQL failed: ${error.message}`);
    status = 1;
  }
} finally {
  await client.end().catch(() => {});
}
process.exit(status);
