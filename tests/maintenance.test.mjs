// The cron trigger's housekeeping (src/scheduled.rs): ended sessions with their refresh
// tokens and audit entries past AUDIT_RETENTION_DAYS go; accounts, roles, live sessions and
// recent entries stay. Fired through Miniflare's scheduled trigger with the cron string
// wrangler.toml declares and an explicit scheduled time.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { startWorker, nowSeconds, sleep, ROOT } from "./helpers.mjs";

const DAY = 86_400;
const CRON = /^\s*crons\s*=\s*\[\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))?.[1];

/** Insert an account, sessions with two refresh tokens each, and audit entries. */
async function seed(worker, { sessions = [], audit = [] }) {
  const userId = randomUUID();
  const statements = [
    [
      "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?1, ?2, 'x', 0, 0)",
      userId,
      `m_${userId.slice(0, 8)}`,
    ],
    ["INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, 'user', 0)", userId],
  ];
  const ids = {};
  for (const [name, { idle, absolute, revoked = null }] of Object.entries(sessions)) {
    const id = randomUUID();
    ids[name] = id;
    statements.push(
      [
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, revoked_at) VALUES (?1, ?2, 0, 0, ?3, ?4, ?5)",
        id,
        userId,
        idle,
        absolute,
        revoked,
      ],
      [
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at, replaced_by) VALUES (?1, ?2, 0, ?3, 0, ?4)",
        `${id}-a`,
        id,
        idle,
        `${id}-b`,
      ],
      ["INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?1, ?2, 0, ?3)", `${id}-b`, id, idle],
    );
  }
  for (const [action, at] of audit) {
    statements.push(["INSERT INTO audit_log (occurred_at, action, target_id) VALUES (?1, ?2, ?3)", at, action, userId]);
  }
  await worker.db.batch(statements);
  return { userId, ids };
}

const maintenanceLines = (worker) => worker.logs.filter((l) => l.includes('"event":"maintenance"'));

/** Fire the trigger as if scheduled at `at` (unix seconds); returns its log line. */
async function runAt(worker, at) {
  const seen = maintenanceLines(worker).length;
  const run = await worker.scheduled({ cron: CRON, time: new Date(at * 1000) });
  assert.equal(run.status, 200, JSON.stringify(run.json));
  assert.equal(run.json.outcome, "ok");
  for (let i = 0; i < 40 && maintenanceLines(worker).length === seen; i += 1) {
    await sleep(25);
  }
  const line = maintenanceLines(worker)[seen];
  assert.ok(line, "the run writes one maintenance line");
  const parsed = JSON.parse(line);
  assert.equal(parsed.scheduled_at, new Date(at * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"));
  return parsed;
}

describe("scheduled maintenance", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { AUDIT_RETENTION_DAYS: "30" } });
  });
  after(() => worker.dispose());

  test("wrangler.toml declares a daily cron trigger", () => {
    assert.match(CRON ?? "", /^\d+ \d+ \* \* \*$/);
  });

  test("ended sessions and old audit entries go; accounts, live sessions and recent entries stay", async () => {
    const now = nowSeconds();
    const cutoff = now - 30 * DAY;
    const live = await worker.signup();
    const liveSid = decodeJwt(live.access_token).sid;
    const { userId, ids } = await seed(worker, {
      sessions: {
        live: { idle: now + 1, absolute: now + 100 },
        idleEnded: { idle: now, absolute: now + 100 },
        absoluteEnded: { idle: now + 50, absolute: now },
        revoked: { idle: now + 50, absolute: now + 100, revoked: now - 5 },
      },
      audit: [
        ["user.login", cutoff - 1],
        ["user.login", cutoff - 400 * DAY],
        ["user.banned", cutoff],
        ["user.login", now],
      ],
    });
    const tables = ["users", "user_roles", "roles", "permissions", "role_permissions"];
    const before = {};
    for (const table of tables) before[table] = await worker.count(`SELECT COUNT(*) AS n FROM ${table}`);
    const auditBefore = await worker.count("SELECT COUNT(*) AS n FROM audit_log");

    const line = await runAt(worker, now);

    for (const name of ["idleEnded", "absoluteEnded", "revoked"]) {
      assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE id = ?1", ids[name]), 0, name);
      assert.equal(
        await worker.count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id = ?1", ids[name]),
        0,
        `${name}: its refresh tokens go with it`,
      );
    }
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE id = ?1", ids.live), 1);
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id = ?1", ids.live),
      2,
      "a live session keeps its spent tokens too (reuse detection needs them)",
    );
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE id = ?1", liveSid), 1);
    const entries = await worker.db.query(
      "SELECT action, occurred_at FROM audit_log WHERE target_id = ?1 ORDER BY occurred_at",
      userId,
    );
    assert.deepEqual(
      entries.map((row) => row.occurred_at),
      [cutoff, now],
      "entries at or after the cutoff stay",
    );
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM audit_log"), auditBefore - 2);
    for (const table of tables) {
      assert.equal(await worker.count(`SELECT COUNT(*) AS n FROM ${table}`), before[table], table);
    }
    // The signed-up account still works end to end.
    const me = await worker.request("GET", "/api/v1/users/me", { token: live.access_token });
    assert.equal(me.status, 200);
    assert.equal(line.cron, CRON);
    assert.equal(line.sessions_purged, 3);
    assert.equal(line.refresh_tokens_purged, 6);
    assert.equal(line.audit_entries_purged, 2);
    assert.equal(line.incomplete, false);

    // A second run at the same moment finds nothing more to do.
    const second = await runAt(worker, now);
    assert.equal(second.sessions_purged, 0);
    assert.equal(second.audit_entries_purged, 0);
  });

  test("expired one-time tokens go, live ones stay", async () => {
    const now = nowSeconds();
    const account = await worker.signup();
    const insert = (id, expiresAt) =>
      worker.db.run(
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, code_hash, email, created_at, expires_at) \
           VALUES (?1, ?2, 'reset_password', ?3, 'c', 'a@example.com', ?4, ?5)",
        id,
        account.user.id,
        `hash-${id}`,
        now - 100,
        expiresAt,
      );
    const expired = randomUUID();
    const live = randomUUID();
    await insert(expired, now - 1);
    await insert(live, now + 3600);
    const line = await runAt(worker, now);
    assert.ok(line.one_time_tokens_purged >= 1, JSON.stringify(line));
    const left = await worker.db.query("SELECT id FROM one_time_tokens WHERE id IN (?1, ?2)", expired, live);
    assert.deepEqual(left.map((row) => row.id), [live]);
  });

  test("more old rows than one chunk are all purged in one run", async () => {
    const now = nowSeconds() + 10;
    await worker.db.run(
      // The cast types the parameter for PostgreSQL, which would otherwise take it as int4.
      `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 2499)
         INSERT INTO audit_log (occurred_at, action) SELECT CAST(?1 AS BIGINT) - i, 'user.login' FROM n`,
      now - 31 * DAY,
    );
    const old = await worker.count("SELECT COUNT(*) AS n FROM audit_log WHERE occurred_at < ?1", now - 30 * DAY);
    assert.ok(old >= 2500);
    const line = await runAt(worker, now);
    assert.equal(line.audit_entries_purged, old);
    assert.equal(line.incomplete, false);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM audit_log WHERE occurred_at < ?1", now - 30 * DAY), 0);
  });
});

describe("scheduled maintenance with AUDIT_RETENTION_DAYS=0", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { AUDIT_RETENTION_DAYS: "0" } });
  });
  after(() => worker.dispose());

  test("keeps every audit entry but still purges ended sessions", async () => {
    const now = nowSeconds();
    const { ids } = await seed(worker, {
      sessions: { ended: { idle: now - 1, absolute: now + 100 } },
      audit: [["user.login", now - 3650 * DAY]],
    });
    const line = await runAt(worker, now);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM audit_log"), 1);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE id = ?1", ids.ended), 0);
    assert.equal(line.audit_cutoff, null);
    assert.equal(line.audit_entries_purged, 0);
  });
});

describe("scheduled maintenance without a database", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ database: false });
  });
  after(() => worker.dispose());

  test("a failed run says so in an error line", async () => {
    const run = await worker.scheduled({ cron: CRON });
    assert.equal(run.status, 200);
    for (let i = 0; i < 20 && !worker.logs.some((l) => l.includes("maintenance_failed")); i += 1) {
      await sleep(25);
    }
    const line = worker.logs.find((l) => l.includes('"maintenance_failed"'));
    assert.ok(line, worker.logs.join("\n"));
    assert.equal(JSON.parse(line).level, "error");
  });
});
