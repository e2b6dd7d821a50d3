// Bootstrapping the first admin: `npm run admin -- grant|revoke <username>` (scripts/admin.sh)
// runs SQL through `wrangler d1 execute`. Its SQL is checked on Miniflare's D1, its input
// checking on hostile usernames, and one run goes through wrangler itself against a local
// database the Worker then uses. The command line speaks D1 only (its SQL is SQLite's), so
// with TEST_DATABASE=postgres only the input checking runs.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWorker, assertProblem, runCommand, ROOT, TEST_DATABASE } from "./helpers.mjs";

const SCRIPT = join(ROOT, "scripts/admin.sh");

/** Run the script; resolves to {code, stdout, stderr} whatever the exit status. */
const admin = (...args) => runCommand("bash", [SCRIPT, ...args], { cwd: ROOT });

/** Suites that run the script's SQL need the backend it is written for. */
const D1_ONLY = TEST_DATABASE === "d1" ? false : "the command line writes SQLite SQL for D1 only";

/**
 * Run the script's SQL (from --print-sql) on the Worker's database: the state it reads first,
 * its writes as one batch, the state it reads last; returns the two states.
 */
async function applySql(worker, ...args) {
  const printed = await admin(...args, "--print-sql");
  assert.equal(printed.code, 0, printed.stderr);
  const [first, ...rest] = printed.stdout
    .split(/;\s*\n/)
    .map((sql) => sql.trim())
    .filter(Boolean);
  const last = rest.pop();
  const before = await worker.db.first(first);
  await worker.db.batch(rest.map((sql) => [sql]));
  return { before, after: await worker.db.first(last) };
}

/** Whether the account holds the admin role in the Worker's database. */
async function isAdmin(worker, userId) {
  const sql = "SELECT COUNT(*) AS n FROM user_roles WHERE user_id = ?1 AND role = 'admin'";
  return (await worker.count(sql, userId)) === 1;
}

describe("npm run admin: the SQL it runs", { skip: D1_ONLY }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("grant makes an existing account admin once, with an audit entry", async () => {
    const account = await worker.signup();
    const { before: was, after: now } = await applySql(worker, "grant", account.username.toUpperCase());
    assert.deepEqual([was.found, was.admin, now.found, now.admin], [1, 0, 1, 1]);
    assert.ok(await isAdmin(worker, account.user.id));
    const again = await applySql(worker, "grant", account.username);
    assert.deepEqual([again.before.admin, again.after.admin], [1, 1], "granting twice changes nothing");
    const entries = await worker.db.query(
      "SELECT action, actor_id, details FROM audit_log WHERE target_id = ?1 AND action LIKE 'user.role%'",
      account.user.id,
    );
    assert.deepEqual(entries, [
      { action: "user.role_granted", actor_id: null, details: '{"role":"admin","via":"command_line"}' },
    ]);
    // The account's next login carries the role, and the admin API opens.
    const login = await worker.login(account.username);
    assert.deepEqual(login.user.roles, ["admin", "user"]);
    const users = await worker.request("GET", "/api/v1/admin/users", { token: login.access_token });
    assert.equal(users.status, 200, users.text);
  });

  test("revoke takes the role back, and the old token loses the admin API at once", async () => {
    const account = await worker.signup();
    await applySql(worker, "grant", account.username);
    const login = await worker.login(account.username);
    const { before: was, after: now } = await applySql(worker, "revoke", account.username);
    assert.deepEqual([was.admin, now.admin], [1, 0]);
    assert.ok(!(await isAdmin(worker, account.user.id)));
    assertProblem(assert, await worker.request("GET", "/api/v1/admin/users", { token: login.access_token }), 403);
    const entry = await worker.db.first(
      "SELECT details FROM audit_log WHERE target_id = ?1 AND action = 'user.role_revoked'",
      account.user.id,
    );
    assert.equal(entry.details, '{"role":"admin","via":"command_line"}');
  });

  test("an unknown username changes nothing", async () => {
    const before = await worker.count("SELECT COUNT(*) AS n FROM user_roles");
    const audit = await worker.count("SELECT COUNT(*) AS n FROM audit_log");
    const { after: now } = await applySql(worker, "grant", "nobody_by_this_name");
    assert.equal(now.found, 0);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM user_roles"), before);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM audit_log"), audit);
  });
});

describe("npm run admin: input checking", () => {
  test("anything but a valid username is refused before any SQL is built", async () => {
    for (const bad of [
      "a'b",
      "alice'; DROP TABLE users; --",
      "alice' OR '1'='1",
      "ab",
      "a".repeat(43),
      "ålice",
      "al ice",
      '"alice"',
      "alice\n",
      "$(id)",
      "alice%",
    ]) {
      const result = await admin("grant", bad, "--print-sql");
      assert.equal(result.code, 2, JSON.stringify(bad));
      assert.equal(result.stdout, "", "no SQL printed");
      assert.match(result.stderr, /is not a username \(3-42 letters, digits or underscores\)/);
    }
  });

  test("usage errors exit 2 with the usage line", async () => {
    for (const args of [
      [],
      ["grant"],
      ["promote", "alice"],
      ["grant", "alice", "bob"],
      ["grant", "alice", "--force"],
      ["grant", "alice", "--remote", "--persist-to", "/tmp/x"],
    ]) {
      const result = await admin(...args);
      assert.equal(result.code, 2, args.join(" "));
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /usage: npm run admin|--persist-to is for the local database only/);
    }
  });
});

describe("npm run admin: on PostgreSQL", { skip: TEST_DATABASE === "postgres" ? false : "needs TEST_DATABASE=postgres" }, () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());
  const onPostgres = (...args) =>
    runCommand("bash", [SCRIPT, ...args], {
      cwd: ROOT,
      env: { ...process.env, DATABASE: "postgres", DATABASE_URL: worker.databaseUrl },
    });

  test("grant and revoke say what they changed, the Worker sees it, and the last admin stays", async () => {
    const account = await worker.signup();
    const granted = await onPostgres("grant", account.username.toUpperCase());
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal(granted.stdout.trim(), `${account.username} is now an admin (postgres)`);
    const again = await onPostgres("grant", account.username);
    assert.equal(again.stdout.trim(), `${account.username} was already an admin; nothing changed (postgres)`);
    const login = await worker.login(account.username);
    assert.deepEqual(login.user.roles, ["admin", "user"]);
    const users = await worker.request("GET", "/api/v1/admin/users", { token: login.access_token });
    assert.equal(users.status, 200, users.text);
    const entries = await worker.db.query(
      "SELECT action, details FROM audit_log WHERE target_id = ?1 AND action LIKE 'user.role%'",
      account.user.id,
    );
    assert.deepEqual(entries, [{ action: "user.role_granted", details: '{"role":"admin","via":"command_line"}' }]);

    const refused = await onPostgres("revoke", account.username);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /is the last active admin; grant admin to another account first; nothing changed \(postgres\)/);
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'user.role_revoked'"),
      0,
      "a refused revoke leaves no audit entry",
    );
    const second = await worker.signup();
    assert.equal((await onPostgres("grant", second.username)).code, 0);
    const revoked = await onPostgres("revoke", account.username);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(revoked.stdout.trim(), `${account.username} is no longer an admin (postgres)`);
    assertProblem(assert, await worker.request("GET", "/api/v1/admin/users", { token: login.access_token }), 403);
    const missing = await onPostgres("grant", "nobody_here");
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no account named nobody_here in the PostgreSQL database; nothing changed/);
  });
});

describe("npm run admin: through wrangler against a local database", { skip: D1_ONLY }, () => {
  const dir = mkdtempSync(join(tmpdir(), "edge-auth-admin-"));
  // wrangler keeps local D1 state under <persist-to>/v3/d1, keyed by the database_id.
  const d1Persist = join(dir, "v3", "d1");
  const d1Id = /database_id\s*=\s*"([^"]+)"/.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))[1];
  let account;
  before(async () => {
    const worker = await startWorker({ d1Persist, d1Id });
    account = await worker.signup();
    await worker.dispose();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("grant and revoke say what they changed, and the Worker sees it", async () => {
    const granted = await admin("grant", account.username, "--persist-to", dir);
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal(granted.stdout.trim(), `${account.username} is now an admin (local)`);
    const again = await admin("grant", account.username, "--persist-to", dir);
    assert.equal(again.stdout.trim(), `${account.username} was already an admin; nothing changed (local)`);

    const worker = await startWorker({ d1Persist, d1Id });
    try {
      const login = await worker.login(account.username);
      assert.deepEqual(login.user.roles, ["admin", "user"]);
      const users = await worker.request("GET", "/api/v1/admin/users", { token: login.access_token });
      assert.equal(users.status, 200, users.text);
    } finally {
      await worker.dispose();
    }

    // The only admin keeps the role: the last-admin rule binds the command line too.
    const refused = await admin("revoke", account.username, "--persist-to", dir);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`${account.username} is the last active admin; grant admin to another account first; nothing changed \\(local\\)`),
    );
    const other = await startWorker({ d1Persist, d1Id });
    let second;
    try {
      assert.equal(
        await other.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'user.role_revoked'"),
        0,
        "a refused revoke leaves no audit entry",
      );
      second = await other.signup();
    } finally {
      await other.dispose();
    }
    assert.equal((await admin("grant", second.username, "--persist-to", dir)).code, 0);

    const revoked = await admin("revoke", account.username, "--persist-to", dir);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`^${account.username} is no longer an admin \\(local\\)`));
    const missing = await admin("grant", "nobody_here", "--persist-to", dir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no account named nobody_here in the local database; nothing changed/);
  });
});
