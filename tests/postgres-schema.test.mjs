// The PostgreSQL schema (migrations/postgres/) on a throw-away server from
// scripts/postgres.mjs: migrations apply once, the tables and named constraints are there,
// unique violations name their constraint, the last-admin rule refuses what D1's does
// (tests/hardening.test.mjs, migrations/0004_last_admin.sql) and holds under concurrency;
// and the dialect-neutral helper of tests/database.mjs behaves the same on D1 and PostgreSQL.
// Needs no built Worker. The server is this file's own (own port, own temporary directory),
// even when DATABASE_URL is set, and is stopped and removed whatever happens.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { Miniflare } from "miniflare";
import pg from "pg";
import { startPostgres } from "../scripts/postgres.mjs";
import { migrate, migrationFiles } from "../scripts/migrate-postgres.mjs";
import { d1Database, postgresDatabase, toPostgresPlaceholders } from "./database.mjs";
import { migrationStatements, nowSeconds, uniqueName, sleep } from "./helpers.mjs";

const VERSIONS = migrationFiles().map((file) => file.version);

let server;
/** Connections and pools this file opened, closed before the server stops. */
const opened = [];

before(async () => {
  server = await startPostgres({ databaseUrl: null });
});

after(async () => {
  await Promise.allSettled(opened.map((handle) => handle.end()));
  await server?.stop();
});

/** A connected client on `url`, with timeouts so that a lock bug fails instead of hanging. */
async function connect(url = server.url) {
  const client = new pg.Client({ connectionString: url, statement_timeout: 20_000, lock_timeout: 15_000 });
  await client.connect();
  opened.push(client);
  return client;
}

/** The server's URL for another database. */
function urlFor(database) {
  const url = new URL(server.url);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A new empty database on the server; resolves to its URL. */
async function emptyDatabase() {
  const name = `t_${randomUUID().replaceAll("-", "")}`;
  const admin = await connect();
  await admin.query(`CREATE DATABASE ${name}`);
  return urlFor(name);
}

/** A new database with the schema applied; resolves to a connected client on it. */
async function freshDatabase() {
  const url = await emptyDatabase();
  await migrate(url);
  return connect(url);
}

/** Insert an account (and, with `admin`, its admin role); resolves to its id. */
async function account(client, { admin = false, bannedAt = null, bannedUntil = null } = {}) {
  const id = randomUUID();
  await client.query(
    "INSERT INTO users (id, username, password_hash, created_at, updated_at, banned_at, banned_until) \
     VALUES ($1, $2, 'x', 0, 0, $3, $4)",
    [id, uniqueName("pg"), bannedAt, bannedUntil],
  );
  await client.query("INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, 'user', 0)", [id]);
  if (admin) {
    await client.query("INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, 'admin', 0)", [id]);
  }
  return id;
}

async function activeAdmins(client) {
  const { rows } = await client.query("SELECT user_id FROM active_admins ORDER BY user_id");
  return rows.map((row) => row.user_id);
}

/** Assert that `promise` rejects with the last-admin exception. */
async function refusedAsLastAdmin(promise) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.message, "edge_auth:last_admin");
    assert.equal(error.code, "EA001");
    return true;
  });
}

describe("migrations", () => {
  test("the throw-away server applied every migration, and a second run applies nothing", async () => {
    assert.equal(server.external, false);
    assert.match(server.url, /^postgres:\/\/edge_auth:[^@]+@127\.0\.0\.1:\d+\/edge_auth$/);
    assert.deepEqual(server.applied, VERSIONS);
    const again = await migrate(server.url);
    assert.deepEqual(again, { applied: [], alreadyApplied: VERSIONS });
    const client = await connect();
    const { rows } = await client.query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
    assert.deepEqual(rows.map((row) => row.version), VERSIONS);
    for (const row of rows) assert.ok(Math.abs(Number(row.applied_at) - nowSeconds()) < 600);
  });

  test("two runners at once on a new database apply each file exactly once", async () => {
    const url = await emptyDatabase();
    const [one, two] = await Promise.all([migrate(url), migrate(url)]);
    assert.deepEqual([...one.applied, ...two.applied].sort(), VERSIONS);
    assert.deepEqual([...one.alreadyApplied, ...two.alreadyApplied].sort(), VERSIONS);
  });

  test("with a database URL given, nothing is started: that server is only migrated", async () => {
    const external = await startPostgres({ databaseUrl: server.url });
    assert.deepEqual(
      { external: external.external, url: external.url, applied: external.applied, directory: external.directory },
      { external: true, url: server.url, applied: [], directory: null },
    );
    await external.stop();
    const client = await connect();
    assert.equal((await client.query("SELECT 1 AS one")).rows[0].one, 1, "stop() left it running");
  });
});

describe("schema", () => {
  let client;
  before(async () => {
    client = await connect();
  });

  test("has the D1 schema's tables and view", async () => {
    const { rows } = await client.query(
      "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    assert.deepEqual(
      rows.map((row) => `${row.table_name}${row.table_type === "VIEW" ? " (view)" : ""}`),
      [
        "active_admins (view)",
        "audit_log",
        "identities",
        "mfa_factors",
        "oauth_grants",
        "one_time_tokens",
        "outbox",
        "passkeys",
        "permissions",
        "recovery_codes",
        "refresh_tokens",
        "role_permissions",
        "roles",
        "schema_migrations",
        "sessions",
        "user_roles",
        "users",
        "webauthn_challenges",
      ],
    );
  });

  test("uses native types: uuid ids, boolean flags, bigint unix seconds", async () => {
    const { rows } = await client.query(
      "SELECT table_name || '.' || column_name AS col, data_type FROM information_schema.columns \
       WHERE table_schema = 'public' AND table_name <> 'schema_migrations'",
    );
    const types = Object.fromEntries(rows.map((row) => [row.col, row.data_type]));
    for (const col of [
      "users.id", "sessions.id", "sessions.user_id", "user_roles.user_id", "refresh_tokens.session_id",
      "one_time_tokens.id", "one_time_tokens.user_id", "outbox.id", "audit_log.actor_id", "audit_log.target_id",
      "identities.id", "identities.user_id", "mfa_factors.id", "mfa_factors.user_id",
      "recovery_codes.user_id",
      "identities.id", "identities.user_id", "passkeys.id", "passkeys.user_id", "webauthn_challenges.user_id",
    ]) {
      assert.equal(types[col], "uuid", col);
    }
    assert.equal(types["users.email_verified"], "boolean");
    assert.equal(types["passkeys.backup_eligible"], "boolean");
    assert.equal(types["passkeys.backed_up"], "boolean");
    for (const [col, type] of Object.entries(types)) {
      if (/_at$|_until$|tokens_valid_after$/.test(col)) assert.equal(type, "bigint", col);
    }
    assert.equal(types["audit_log.id"], "bigint");
    assert.equal(types["audit_log.details"], "text");
    assert.equal(types["refresh_tokens.token_hash"], "text");
    assert.equal(types["roles.name"], "text");
  });

  test("names its unique constraints and keeps every index", async () => {
    const constraints = await client.query(
      "SELECT conname, conrelid::regclass::text AS tbl, contype FROM pg_constraint \
       WHERE connamespace = 'public'::regnamespace AND contype IN ('u', 'p')",
    );
    const names = constraints.rows.map((row) => `${row.tbl}.${row.conname}`);
    for (const name of [
      "users.users_username_key", "users.users_email_key", "one_time_tokens.one_time_tokens_token_hash_key",
      "identities.identities_provider_subject_key", "identities.identities_user_provider_key",
      "mfa_factors.mfa_factors_user_kind_key", "recovery_codes.recovery_codes_pkey",
      "passkeys.passkeys_credential_id_key",
    ]) {
      assert.ok(names.includes(name), `${name} in ${names}`);
    }
    const indexes = await client.query("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'");
    const have = new Set(indexes.rows.map((row) => row.indexname));
    for (const index of [
      "sessions_by_user", "refresh_tokens_by_session", "role_permissions_by_permission", "user_roles_by_role",
      "audit_log_by_time", "audit_log_by_actor", "audit_log_by_target", "audit_log_by_action",
      "one_time_tokens_by_user", "one_time_tokens_by_email", "outbox_by_recipient",
      "identities_by_user", "oauth_grants_by_expiry", "passkeys_by_user", "webauthn_challenges_by_expiry",
    ]) {
      assert.ok(have.has(index), index);
    }
  });

  test("seeds the same roles and permissions as D1", async () => {
    const roles = await client.query("SELECT name FROM roles ORDER BY name");
    assert.deepEqual(roles.rows.map((row) => row.name), ["admin", "user"]);
    const grants = await client.query("SELECT role, count(*)::int AS n FROM role_permissions GROUP BY role");
    assert.deepEqual(grants.rows, [{ role: "admin", n: 8 }]);
  });

  test("a taken username or email fails with 23505 on users_username_key / users_email_key", async () => {
    const username = uniqueName("dup");
    const email = `${username}@example.com`;
    const insert = (name, mail) =>
      client.query(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, 'x', 0, 0)",
        [randomUUID(), name, mail],
      );
    await insert(username, email);
    await assert.rejects(insert(username, null), (error) => {
      assert.equal(error.code, "23505");
      assert.equal(error.constraint, "users_username_key");
      return true;
    });
    await assert.rejects(insert(uniqueName("dup"), email), (error) => {
      assert.equal(error.code, "23505");
      assert.equal(error.constraint, "users_email_key");
      return true;
    });
    // Several accounts may have no email.
    await insert(uniqueName("dup"), null);
    await insert(uniqueName("dup"), null);
  });

  test("a linked subject, or a second identity of one provider, fails with 23505 on its named constraint", async () => {
    const user = randomUUID();
    const other = randomUUID();
    for (const id of [user, other]) {
      await client.query(
        "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES ($1, $2, '!none', 0, 0)",
        [id, uniqueName("idn")],
      );
    }
    const link = (userId, provider, subject) =>
      client.query(
        "INSERT INTO identities (id, user_id, provider, subject, created_at, last_used_at) VALUES ($1, $2, $3, $4, 0, 0)",
        [randomUUID(), userId, provider, subject],
      );
    const subject = uniqueName("sub");
    await link(user, "github", subject);
    await assert.rejects(link(other, "github", subject), (error) => {
      assert.equal(error.code, "23505");
      assert.equal(error.constraint, "identities_provider_subject_key");
      return true;
    });
    await assert.rejects(link(user, "github", uniqueName("sub")), (error) => {
      assert.equal(error.code, "23505");
      assert.equal(error.constraint, "identities_user_provider_key");
      return true;
    });
    // The same subject at another provider is another identity.
    await link(other, "google", subject);
  });

  test("a one-time value is spent by exactly one of two concurrent deletes", async () => {
    const digest = uniqueName("grant");
    await client.query(
      "INSERT INTO oauth_grants (digest, kind, payload, created_at, expires_at) VALUES ($1, 'state', '{}', 0, 9999999999)",
      [digest],
    );
    const other = await connect();
    const spend = (db) => db.query("DELETE FROM oauth_grants WHERE digest = $1 AND kind = 'state' RETURNING payload", [digest]);
    const results = await Promise.all([spend(client), spend(other)]);
    assert.deepEqual(results.map((result) => result.rowCount).sort(), [0, 1]);
  });

  test("usernames and emails order bytewise, so prefix ranges find what they should", async () => {
    const prefix = uniqueName("rng");
    for (const suffix of ["a", "B", "z", "é"]) {
      await client.query(
        "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES ($1, $2, 'x', 0, 0)",
        [randomUUID(), `${prefix}${suffix}`],
      );
    }
    // The upper bound as the admin search computes it: the prefix with its last char + 1.
    const upper = prefix.slice(0, -1) + String.fromCodePoint(prefix.codePointAt(prefix.length - 1) + 1);
    const { rows } = await client.query(
      "SELECT username FROM users WHERE username >= $1 AND username < $2 ORDER BY username",
      [prefix, upper],
    );
    assert.deepEqual(rows.map((row) => row.username.slice(prefix.length)), ["B", "a", "z", "é"]);
  });

  test("audit details are text holding a JSON object; the id counts up", async () => {
    const insert = (details) =>
      client.query(
        "INSERT INTO audit_log (occurred_at, action, details) VALUES (1, 'user.login', $1) RETURNING id, details",
        [details],
      );
    const first = await insert('{"b": 1,  "a": [2]}');
    assert.equal(first.rows[0].details, '{"b": 1,  "a": [2]}', "returned as written");
    const second = await insert("{}");
    assert.ok(Number(second.rows[0].id) > Number(first.rows[0].id));
    await assert.rejects(insert("[1]"), { code: "23514" });
    await assert.rejects(insert("not json"), { code: "22P02" });
  });
});

describe("the last active admin", () => {
  let db;
  let sole;
  before(async () => {
    db = await freshDatabase();
    sole = await account(db, { admin: true });
  });

  test("cannot lose the admin role, be banned, or be deleted", async () => {
    await refusedAsLastAdmin(db.query("DELETE FROM user_roles WHERE user_id = $1 AND role = 'admin'", [sole]));
    await refusedAsLastAdmin(db.query("UPDATE user_roles SET role = 'user' WHERE user_id = $1 AND role = 'admin'", [sole]));
    await refusedAsLastAdmin(db.query("UPDATE users SET banned_at = 1 WHERE id = $1", [sole]));
    await refusedAsLastAdmin(
      db.query("UPDATE users SET banned_at = $2, banned_until = $3 WHERE id = $1", [sole, nowSeconds(), nowSeconds() + 3600]),
    );
    await refusedAsLastAdmin(db.query("DELETE FROM users WHERE id = $1", [sole]));
    assert.deepEqual(await activeAdmins(db), [sole]);
  });

  test("a refused change undoes the whole transaction", async () => {
    await db.query("BEGIN");
    await db.query("UPDATE users SET updated_at = 42 WHERE id = $1", [sole]);
    await refusedAsLastAdmin(db.query("DELETE FROM users WHERE id = $1", [sole]));
    await db.query("ROLLBACK");
    const { rows } = await db.query("SELECT updated_at FROM users WHERE id = $1", [sole]);
    assert.equal(Number(rows[0].updated_at), 0);
  });

  test("a ban that has already ended is no ban; other accounts come and go freely", async () => {
    await db.query("UPDATE users SET banned_at = 1, banned_until = 2 WHERE id = $1", [sole]);
    assert.deepEqual(await activeAdmins(db), [sole]);
    await db.query("UPDATE users SET banned_at = NULL, banned_until = NULL WHERE id = $1", [sole]);
    const someone = await account(db);
    await db.query("UPDATE users SET banned_at = 1 WHERE id = $1", [someone]);
    await db.query("DELETE FROM users WHERE id = $1", [someone]);
  });

  test("a banned admin is no admin; once the ban is lifted, the rule lets the other one go", async () => {
    const banned = await account(db, { admin: true, bannedAt: nowSeconds() });
    await refusedAsLastAdmin(db.query("DELETE FROM users WHERE id = $1", [sole]));
    await refusedAsLastAdmin(db.query("UPDATE users SET banned_at = 1 WHERE id = $1", [sole]));
    // The banned one is not the last active admin: it may go.
    await db.query("DELETE FROM user_roles WHERE user_id = $1 AND role = 'admin'", [banned]);
    await db.query("INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1, 'admin', 0)", [banned]);
    await db.query("UPDATE users SET banned_at = NULL WHERE id = $1", [banned]);
    await db.query("UPDATE users SET banned_at = $2 WHERE id = $1", [sole, nowSeconds()]);
    assert.deepEqual(await activeAdmins(db), [banned]);
    await db.query("UPDATE users SET banned_at = NULL WHERE id = $1", [sole]);
    sole = banned;
  });

  test("removing an admin under REPEATABLE READ, where the rule could not hold, is refused", async () => {
    const second = await account(db, { admin: true });
    await db.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await assert.rejects(db.query("DELETE FROM user_roles WHERE user_id = $1 AND role = 'admin'", [second]), {
      code: "0A000",
    });
    await db.query("ROLLBACK");
    // Other accounts are not concerned.
    const someone = await account(db);
    await db.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
    await db.query("DELETE FROM users WHERE id = $1", [someone]);
    await db.query("COMMIT");
    // SERIALIZABLE is fine: there a concurrent removal fails with 40001 instead.
    await db.query("BEGIN ISOLATION LEVEL SERIALIZABLE");
    await db.query("DELETE FROM users WHERE id = $1", [second]);
    await db.query("COMMIT");
  });

  test("one statement removing every admin is refused whole", async () => {
    const second = await account(db, { admin: true });
    await refusedAsLastAdmin(db.query("DELETE FROM user_roles WHERE role = 'admin'"));
    await refusedAsLastAdmin(db.query("DELETE FROM users WHERE id IN (SELECT user_id FROM user_roles WHERE role = 'admin')"));
    assert.equal((await activeAdmins(db)).length >= 2, true);
    // With another admin left, deleting one account cascades to its roles without complaint.
    await db.query("DELETE FROM users WHERE id = $1", [second]);
  });
});

describe("the last-admin rule under concurrency", () => {
  let setup;
  let one;
  let two;
  before(async () => {
    setup = await freshDatabase();
    const url = setup.connectionParameters;
    one = await connect(urlFor(url.database));
    two = await connect(urlFor(url.database));
  });

  const REMOVALS = {
    demote: (client, id) => client.query("DELETE FROM user_roles WHERE user_id = $1 AND role = 'admin'", [id]),
    ban: (client, id) => client.query("UPDATE users SET banned_at = $2 WHERE id = $1", [id, nowSeconds()]),
    delete: (client, id) => client.query("DELETE FROM users WHERE id = $1", [id]),
  };
  const KINDS = Object.keys(REMOVALS);

  /** Resolves to "waiting" once `pid` waits on a lock, or "done" once `query` settled. */
  async function blockedOrDone(pid, query) {
    let settled = false;
    query.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let i = 0; i < 400; i += 1) {
      if (settled) return "done";
      const { rows } = await setup.query("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", [pid]);
      if (rows[0]?.wait_event_type === "Lock") return "waiting";
      await sleep(5);
    }
    assert.fail("the second removal neither finished nor waited");
  }

  /** BEGIN, remove, COMMIT on `client`; resolves to "ok" or "last_admin" (rolled back). */
  async function removeIn(client, kind, id, beforeCommit = async () => {}) {
    await client.query("BEGIN");
    try {
      await REMOVALS[kind](client, id);
      await beforeCommit();
      await client.query("COMMIT");
      return "ok";
    } catch (error) {
      await client.query("ROLLBACK");
      if (error.message === "edge_auth:last_admin") return "last_admin";
      throw error;
    }
  }

  test("two connections each removing one of the last two admins never leave none", { timeout: 60_000 }, async () => {
    const ROUNDS = 20;
    let waited = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      // Exactly two active admins: the new pair first, then everyone else goes.
      const a = await account(setup, { admin: true });
      const b = await account(setup, { admin: true });
      await setup.query("DELETE FROM users WHERE id <> ALL($1::uuid[])", [[a, b]]);
      assert.deepEqual((await activeAdmins(setup)).sort(), [a, b].sort());
      const kindA = KINDS[round % 3];
      const kindB = KINDS[Math.floor(round / 3) % 3];
      let outcomes;
      if (round % 2 === 0) {
        // Interleaved: `one` removes a and, before it commits, `two` removes b. `two` must be
        // seen blocked (or finished) before `one` commits, so the race really happens.
        let second;
        const first = removeIn(one, kindA, a, async () => {
          second = removeIn(two, kindB, b);
          if ((await blockedOrDone(two.processID, second)) === "waiting") waited += 1;
        });
        outcomes = [await first, await second];
      } else {
        // Both at once, each committing as soon as it can.
        outcomes = await Promise.all([removeIn(one, kindA, a), removeIn(two, kindB, b)]);
      }
      const left = await activeAdmins(setup);
      assert.equal(left.length, 1, `round ${round} (${kindA} vs ${kindB}): ${outcomes}; active admins: ${left}`);
      assert.deepEqual(outcomes.slice().sort(), ["last_admin", "ok"], `round ${round} (${kindA} vs ${kindB})`);
    }
    // The interleaved rounds must have raced for real: the second removal waited on the first.
    assert.ok(waited >= ROUNDS / 2 - 1, `the second removal waited in ${waited} of ${ROUNDS / 2} interleaved rounds`);
  });
});

describe("tests/database.mjs, one helper for D1 and PostgreSQL", () => {
  test("placeholders become $N outside quotes and comments", () => {
    assert.equal(
      toPostgresPlaceholders("SELECT '?1', \"a?2\" FROM t -- ?3\nWHERE a = ?1 AND b = ?12 /* ?4 */ AND c = 'it''s ?'"),
      "SELECT '?1', \"a?2\" FROM t -- ?3\nWHERE a = $1 AND b = $12 /* ?4 */ AND c = 'it''s ?'",
    );
    assert.equal(toPostgresPlaceholders("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
  });

  /** The same dialect-neutral script on either backend. */
  async function exercise(db) {
    const id = randomUUID();
    const other = randomUUID();
    const name = uniqueName("db");
    const insert = "INSERT INTO users (id, username, password_hash, email_verified, created_at, updated_at) \
                    VALUES (?1, ?2, 'x', ?3, ?4, ?4)";
    assert.equal(await db.run(insert, id, name, true, 1_700_000_000), 1);
    assert.equal(await db.run(insert, other, `${name}_2`, false, 1_700_000_001), 1);
    const row = await db.first("SELECT id, email_verified, created_at, email FROM users WHERE username = ?1", name);
    assert.deepEqual(row, { id, email_verified: true, created_at: 1_700_000_000, email: null });
    const flags = await db.query(
      "SELECT email_verified FROM users WHERE id IN (?1, ?2) AND email_verified = ?3 ORDER BY created_at",
      id,
      other,
      false,
    );
    assert.deepEqual(flags, [{ email_verified: false }]);
    assert.equal((await db.first("SELECT COUNT(*) AS n FROM users WHERE username LIKE ?1", `${name}%`)).n, 2);
    assert.equal(await db.first("SELECT id FROM users WHERE id = ?1", randomUUID()), null);
    assert.equal(await db.run("UPDATE users SET email_verified = TRUE, updated_at = ?2 WHERE id IN (?1, ?3)", id, 5, other), 2);
    assert.equal(await db.run("INSERT INTO roles (name, description) VALUES ('user', 'x') ON CONFLICT DO NOTHING"), 0);
    // A batch is all or nothing: the taken username undoes the insert before it.
    const third = randomUUID();
    await assert.rejects(
      db.batch([
        [insert, third, `${name}_3`, false, 0],
        [insert, randomUUID(), name, false, 0],
      ]),
    );
    assert.equal(await db.first("SELECT id FROM users WHERE id = ?1", third), null);
    assert.deepEqual(await db.batch([["DELETE FROM users WHERE id = ?1", id], ["DELETE FROM users WHERE id = ?1", other]]), [1, 1]);
  }

  test("on PostgreSQL", async () => {
    const db = postgresDatabase(server.url);
    opened.push({ end: () => db.close() });
    assert.equal(db.dialect, "postgres");
    await exercise(db);
    await db.close();
  });

  test("on D1 (Miniflare), with the same statements", async () => {
    const mf = new Miniflare({
      modules: true,
      script: "export default { fetch() { return new Response(null, { status: 204 }); } }",
      d1Databases: ["DB"],
      d1Persist: false,
    });
    try {
      const binding = await mf.getD1Database("DB");
      await binding.batch(migrationStatements().map((sql) => binding.prepare(sql)));
      const db = d1Database(binding);
      assert.equal(db.dialect, "sqlite");
      await exercise(db);
    } finally {
      await mf.dispose();
    }
  });
});

describe("stopping", () => {
  test("stops the server and removes its files; stopping again is harmless", async () => {
    const { directory, url } = server;
    assert.ok(existsSync(directory));
    await Promise.allSettled(opened.splice(0).map((handle) => handle.end()));
    await server.stop();
    assert.equal(existsSync(directory), false);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    await assert.rejects(client.connect());
    await server.stop();
  });
});
