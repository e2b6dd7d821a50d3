// Test harness: runs the built Worker (build/) in workerd through Miniflare with KV and
// Durable Objects and a fresh, migrated database for each suite, on the backend named by
// TEST_DATABASE: `d1` (the default: Miniflare's D1) or `postgres` (a throw-away PostgreSQL
// reached through the Worker's Hyperdrive binding). Suites read and write that database
// directly only through `worker.db`, the dialect-neutral helper of tests/database.mjs, so
// one suite runs on both.
import { createServer as createTcpServer } from "node:net";
import { Miniflare } from "miniflare";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:http";
import { join, dirname, resolve } from "node:path";
import { after } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { d1Database, postgresDatabase } from "./database.mjs";
import { startPostgres, createDatabase } from "../scripts/postgres.mjs";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ORIGIN = "http://localhost";
export const ISSUER = "https://auth.test";
export const AUDIENCE = "test-app";

/** The backend every Worker of this run stores its data in: TEST_DATABASE, `d1` by default. */
export const TEST_DATABASE = process.env.TEST_DATABASE || "d1";
if (!["d1", "postgres"].includes(TEST_DATABASE)) {
  throw new Error(`TEST_DATABASE must be "d1" or "postgres", not ${JSON.stringify(TEST_DATABASE)}`);
}

// PostgreSQL: one throw-away server per test file process (each file runs in its own), started
// by the first Worker that needs it and shared by the rest; each Worker gets its own database
// on it. DATABASE_URL names a server to use instead (startPostgres's rule): its user must be
// allowed to create databases.
let postgresServer;
function postgres() {
  postgresServer ??= startPostgres({ migrate: false });
  return postgresServer;
}
if (TEST_DATABASE === "postgres") {
  // At the end of the file's tests, not at process exit: the running server would keep the
  // process from exiting. startPostgres also kills it and removes its files on exit, should
  // the process end some other way.
  after(async () => {
    if (postgresServer) await (await postgresServer).stop();
  });
}

/**
 * A migrated database of its own on the test PostgreSQL server; resolves to its URL and
 * whether disposing of the Worker drops it (`owned`). With `persist` (a path, as D1's
 * persistence directory), every call with the same path gets the same database, kept across
 * Workers.
 */
async function postgresDatabaseFor(persist) {
  const server = await postgres();
  if (persist) {
    const key = createHash("sha256").update(resolve(persist)).digest("hex").slice(0, 24);
    return { url: await createDatabase(server.url, `edge_auth_p_${key}`, { ifMissing: true }), owned: false };
  }
  const url = await createDatabase(server.url, `edge_auth_${randomBytes(12).toString("hex")}`);
  // On a server of DATABASE_URL's the database outlives this process unless it is dropped;
  // a throw-away server goes with everything on it.
  return { url, owned: server.external, server };
}

/**
 * Split one migration file into statements: at each `;` that ends a line, except inside a
 * `CREATE TRIGGER ... BEGIN ... END;` body, whose inner statements end lines too.
 */
export function splitStatements(sql) {
  const statements = [];
  let current = [];
  for (const line of sql.split("\n")) {
    if (line.trim().startsWith("--")) continue;
    current.push(line);
    const text = current.join("\n").trim();
    const inTrigger = /^CREATE\s+TRIGGER\b/i.test(text);
    const ends = inTrigger ? /\bEND\s*;\s*$/i.test(line) : /;\s*$/.test(line);
    if (ends) {
      statements.push(text.replace(/;\s*$/, ""));
      current = [];
    }
  }
  const rest = current.join("\n").trim();
  if (rest) statements.push(rest);
  return statements.filter(Boolean);
}

/** The migration files' statements, in order. */
export function migrationStatements() {
  const dir = join(ROOT, "migrations");
  return readdirSync(dir)
    .filter((name) => name.endsWith(".sql"))
    .sort()
    .flatMap((name) => splitStatements(readFileSync(join(dir, name), "utf8")));
}

/**
 * Start the Worker. `vars` override the defaults below (set a var to undefined to remove it);
 * `database: false` (or `d1: false`) starts it without its database binding; `persist` (a
 * directory) keeps the database across Workers started with the same value: D1's state
 * lives there, PostgreSQL's database is named after it. D1 only: `d1Persist` is that
 * directory as wrangler lays it out and `d1Id` names the database (wrangler keys its local
 * state by the `database_id`). `options` are extra Miniflare options. Returns helpers bound
 * to it; `worker.db` is the dialect-neutral helper on its database (undefined without one).
 */
export async function startWorker({
  vars = {},
  d1 = true,
  database = d1,
  persist,
  d1Persist = persist,
  d1Id,
  signingKey,
  options = {},
} = {}) {
  const seed = signingKey ?? randomBytes(32).toString("base64url");
  const onPostgres = TEST_DATABASE === "postgres";
  let postgresTarget;
  if (onPostgres && database) postgresTarget = await postgresDatabaseFor(persist ?? d1Persist);
  const bindings = {
    ENVIRONMENT: "test",
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    ALLOWED_HOSTS: "localhost",
    JWT_SIGNING_KEY: seed,
    IDENTIFIER_DIGEST_KEY: randomBytes(32).toString("base64url"),
    // Generous budgets: suites that test rate limiting set their own.
    RATE_LIMIT_LOGIN: "1000/60",
    RATE_LIMIT_SIGNUP: "1000/60",
    RATE_LIMIT_REFRESH: "1000/60",
    RATE_LIMIT_EMAIL: "1000/60",
    RATE_LIMIT_VERIFY: "1000/60",
    RATE_LIMIT_OAUTH: "1000/60",
    // Which store the Worker uses; D1 is its default, so a D1 run sets nothing.
    ...(onPostgres ? { DATABASE: "postgres" } : {}),
    ...vars,
  };
  for (const [name, value] of Object.entries(bindings)) {
    if (value === undefined) delete bindings[name];
  }
  const logs = [];
  const storage = onPostgres
    ? // The URL carries the user and password, as Miniflare's Hyperdrive needs. Without a
      // database, the binding points at a closed port: an unreachable server, as a missing
      // D1 binding is on D1 (a missing Hyperdrive binding is a configuration error instead).
      { hyperdrives: { HYPERDRIVE: postgresTarget ? postgresTarget.url : await unreachablePostgres() } }
    : {
        d1Databases: database ? (d1Id ? { DB: d1Id } : ["DB"]) : [],
        d1Persist: d1Persist ?? false,
      };
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(ROOT, "build/index.js"),
    modulesRoot: join(ROOT, "build"),
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2026-07-01",
    bindings,
    ...storage,
    kvNamespaces: ["KV"],
    // Lets a test fire the cron trigger: GET /cdn-cgi/handler/scheduled?cron=...&time=...
    unsafeTriggerHandlers: true,
    // As wrangler.toml's [assets]: the Worker first, the files through its ASSETS binding.
    assets: {
      directory: join(ROOT, "build/assets"),
      binding: "ASSETS",
      routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
      assetConfig: { html_handling: "none", not_found_handling: "none" },
    },
    durableObjects: {
      RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
      SESSION_GUARD: { className: "SessionGuard", useSQLite: true },
      METRICS: { className: "MetricsAggregator", useSQLite: true },
    },
    ...options,
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.setEncoding("utf8");
        let pending = "";
        stream.on("data", (chunk) => {
          pending += chunk;
          const lines = pending.split("\n");
          pending = lines.pop();
          logs.push(...lines.filter(Boolean));
        });
      }
    },
  });
  await mf.ready;
  let db;
  let dropDatabase = async () => {};
  if (postgresTarget) {
    db = postgresDatabase(postgresTarget.url);
    if (postgresTarget.owned) {
      const name = new URL(postgresTarget.url).pathname.slice(1);
      dropDatabase = () => dropPostgresDatabase(postgresTarget.server.url, name);
    }
  } else if (database && !onPostgres) {
    const binding = await mf.getD1Database("DB");
    if (!d1Persist || !(await d1TableExists(binding, "users"))) {
      await binding.batch(migrationStatements().map((sql) => binding.prepare(sql)));
    }
    db = d1Database(binding);
  }
  const handle = new WorkerHandle(mf, db, seed, logs, dropDatabase);
  // The PostgreSQL database's connection string, for tools that reach it themselves.
  handle.databaseUrl = postgresTarget?.url;
  return handle;
}

/** A PostgreSQL URL on a local port where nothing listens. */
async function unreachablePostgres() {
  const probe = createTcpServer();
  await new Promise((done) => probe.listen(0, "127.0.0.1", done));
  const { port } = probe.address();
  await new Promise((done) => probe.close(done));
  return `postgres://nobody:nothing@127.0.0.1:${port}/none`;
}

/** Whether a persisted D1 database already has the schema (SQLite's catalogue: D1 only). */
async function d1TableExists(binding, name) {
  const row = await binding
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1")
    .bind(name)
    .first();
  return row !== null;
}

/** Drop a Worker's database from a server that outlives the run (DATABASE_URL's). */
async function dropPostgresDatabase(serverUrl, name) {
  const admin = postgresDatabase(serverUrl, { max: 1 });
  try {
    // FORCE: a connection the Worker's Hyperdrive left open must not keep it alive.
    await admin.run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.close();
  }
}

let counter = 0;
/** A username no other test uses. */
export function uniqueName(prefix = "user") {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}_${randomBytes(3).toString("hex")}`.slice(0, 42);
}

export const STRONG_PASSWORD = "correct horse battery staple";

/** An email address no other test uses, lower-cased, at example.com. */
export function address(prefix = "mail") {
  return `${uniqueName(prefix)}@example.com`.toLowerCase();
}

/** Resolve after `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The current time in whole unix seconds. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Poll `predicate` every 50 ms until it returns something truthy (returned), failing after `timeoutMs`. */
export async function waitFor(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = predicate();
    if (found) return found;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A problem body without the per-request id, for comparing two answers. */
export function withoutRequestId(body) {
  const { request_id: _ignored, ...rest } = body;
  return rest;
}

/** A fetch Response read as `{status, headers, json, text}` (`json` undefined unless the body is JSON). */
export async function readResponse(response) {
  const text = await response.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

const execFileAsync = promisify(execFile);

/** Run a command; resolves to `{code, stdout, stderr}` whatever the exit status. */
export async function runCommand(file, args, options = {}) {
  try {
    const { stdout, stderr } = await execFileAsync(file, args, options);
    return { code: 0, stdout, stderr };
  } catch (error) {
    return { code: error.code, stdout: error.stdout ?? "", stderr: error.stderr ?? "" };
  }
}

/**
 * A stand-in HTTP email provider on 127.0.0.1: records each request as `{method, url, headers,
 * body}` (body parsed as JSON) and answers 503 while `failuresLeft` > 0, then 200.
 */
export async function startHttpProvider() {
  const provider = {
    requests: [],
    failuresLeft: 0,
    url: undefined,
    /** Wait up to about 5 s for `count` requests, then assert there are exactly that many. */
    async waitForRequests(count) {
      for (let i = 0; i < 100 && provider.requests.length < count; i += 1) await sleep(50);
      assert.equal(provider.requests.length, count);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      provider.requests.push({ headers: req.headers, body: JSON.parse(body), method: req.method, url: req.url });
      if (provider.failuresLeft > 0) {
        provider.failuresLeft -= 1;
        res.writeHead(503).end();
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end('{"id":"msg_1"}');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  provider.url = `http://127.0.0.1:${server.address().port}/emails`;
  return provider;
}

export class WorkerHandle {
  constructor(mf, db, seed, logs, dropDatabase = async () => {}) {
    this.mf = mf;
    /** The Worker's database through tests/database.mjs (undefined when started without one). */
    this.db = db;
    this.seed = seed;
    this.logs = logs;
    // Once only: a suite may dispose of a Worker in a test and again in its `after`.
    this.release = async () => {
      this.release = async () => {};
      await db?.close();
      await dropDatabase();
    };
  }

  /**
   * Raw request: `path` relative to the Worker, `init` as for fetch. A redirect is answered,
   * not followed (unless `init.redirect` says otherwise): a test checks where it points.
   */
  fetch(path, init = {}) {
    return this.mf.dispatchFetch(ORIGIN + path, { redirect: "manual", ...init });
  }

  /** JSON request; `body` is serialised unless it is already a string; `cf` sets `request.cf`. */
  async request(method, path, { body, token, headers = {}, cf } = {}) {
    const init = { method, headers: { ...headers } };
    if (cf) init.cf = cf;
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers["content-type"] ??= "application/json";
    }
    if (token) init.headers.authorization = `Bearer ${token}`;
    return this.send(path, init);
  }

  /** Raw request (any body, any headers), answered as `{status, headers, json, text}`. */
  async send(path, init = {}) {
    return readResponse(await this.fetch(path, init));
  }

  /** Fire the cron trigger as if scheduled at `time` (a Date); resolves to the outcome. */
  async scheduled({ cron, time = new Date() }) {
    const query = new URLSearchParams({ cron, time: String(time.getTime()), format: "json" });
    const response = await this.fetch(`/cdn-cgi/handler/scheduled?${query}`);
    return { status: response.status, json: await response.json() };
  }

  /** POST a login (`identifier` as the username member); returns the response, whatever its status. */
  attemptLogin(identifier, password = STRONG_PASSWORD, headers = {}) {
    return this.request("POST", "/api/v1/auth/login", { body: { username: identifier, password }, headers });
  }

  /** Log in with the test password; returns the token response. */
  async login(username, headers = {}) {
    const response = await this.attemptLogin(username, STRONG_PASSWORD, headers);
    if (response.status !== 200) {
      throw new Error(`login failed: ${response.status} ${response.text}`);
    }
    return response.json;
  }

  /** Give an account a role directly in the database (as `npm run admin -- grant` does). */
  async grantRole(userId, role = "admin") {
    await this.db.run(
      "INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, ?2, 0) ON CONFLICT (user_id, role) DO NOTHING",
      userId,
      role,
    );
  }

  /** A fresh account holding the admin role, logged in after the grant (so its token says so). */
  async admin() {
    const account = await this.signup();
    await this.grantRole(account.user.id, "admin");
    return { ...(await this.login(account.username)), username: account.username };
  }

  /** Sign up a fresh account; returns the token response and the password used. */
  async signup(overrides = {}) {
    const body = { username: uniqueName(), password: STRONG_PASSWORD, ...overrides };
    const response = await this.request("POST", "/api/v1/auth/signup", { body });
    if (response.status !== 201) {
      throw new Error(`signup failed: ${response.status} ${response.text}`);
    }
    return { ...response.json, password: body.password, username: body.username };
  }

  /** POST a refresh token to /api/v1/auth/refresh; returns the response, whatever its status. */
  refresh(refreshToken) {
    return this.request("POST", "/api/v1/auth/refresh", { body: { refresh_token: refreshToken } });
  }

  /** GET /api/v1/users/me with `accessToken`; returns the response, whatever its status. */
  me(accessToken) {
    return this.request("GET", "/api/v1/users/me", { token: accessToken });
  }

  /** The development outbox's messages to `to`, newest first; fails the test unless it answers 200. */
  async outbox(to) {
    const response = await this.request("GET", `/api/v1/dev/outbox?to=${encodeURIComponent(to)}`);
    assert.equal(response.status, 200, response.text);
    return response.json;
  }

  /** The newest outbox message to `to` for `purpose`; fails the test when there is none. */
  async latestMessage(to, purpose) {
    const message = (await this.outbox(to)).find((entry) => entry.purpose === purpose);
    assert.ok(message, `a ${purpose} message to ${to}`);
    return message;
  }

  /** The number `n` from a `SELECT COUNT(*) AS n ...` query on the database. */
  async count(sql, ...params) {
    return (await this.db.first(sql, ...params)).n;
  }

  /** The users row as stored (`email_verified` a boolean on both backends), or null. */
  userRow(id) {
    return this.db.first("SELECT * FROM users WHERE id = ?1", id);
  }

  /** The sessions row as stored, or null. */
  sessionRow(id) {
    return this.db.first("SELECT * FROM sessions WHERE id = ?1", id);
  }

  /** The roles an account holds, sorted. */
  async rolesOf(id) {
    const rows = await this.db.query("SELECT role FROM user_roles WHERE user_id = ?1 ORDER BY role", id);
    return rows.map((row) => row.role);
  }

  /** The column names of `table`, from the backend's own catalogue. */
  async columnsOf(table) {
    const rows =
      this.db.dialect === "postgres"
        ? await this.db.query(
            "SELECT column_name AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            table,
          )
        : await this.db.query("SELECT name FROM pragma_table_info(?1) ORDER BY cid", table);
    return rows.map((row) => row.name);
  }

  /** The Worker's log lines that are JSON objects, parsed (other lines left out). */
  events() {
    return this.logs.flatMap((line) => {
      try {
        const entry = JSON.parse(line);
        return entry !== null && typeof entry === "object" ? [entry] : [];
      } catch {
        return [];
      }
    });
  }

  /** Stop the Worker, then close this side's connections to its database. */
  async dispose() {
    try {
      await this.mf.dispose();
    } finally {
      await this.release();
    }
  }
}

/** Assert the RFC 9457 problem shape and return the body. */
export function assertProblem(assert, response, status) {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/problem\+json/);
  const body = response.json;
  assert.equal(body.status, status);
  assert.equal(typeof body.title, "string");
  assert.equal(typeof body.detail, "string");
  assert.match(body.type, /^urn:edge-auth:problem:[a-z_]+$/);
  assert.equal(body.request_id, response.headers.get("x-request-id"));
  return body;
}

/** Assert a 401 problem with a Bearer challenge (and `detail`, when given); returns the body. */
export function assertUnauthorized(assert, response, detail) {
  const body = assertProblem(assert, response, 401);
  assert.equal(body.type, "urn:edge-auth:problem:unauthorized");
  assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer\b/);
  if (detail !== undefined) assert.equal(body.detail, detail);
  return body;
}

/** Assert a 422 problem whose `errors` are exactly `expected`; returns the body. */
export function assertFieldErrors(assert, response, expected) {
  const body = assertProblem(assert, response, 422);
  assert.equal(body.type, "urn:edge-auth:problem:validation_failed");
  assert.ok(Array.isArray(body.errors), response.text);
  assert.deepEqual(body.errors, expected);
  assert.equal(
    body.detail,
    expected.length === 1
      ? `${expected[0].field}: ${expected[0].message}`
      : "Request validation failed",
  );
  return body;
}

/** Assert the security headers every response carries. */
export function assertEdgeHeaders(assert, response) {
  const h = response.headers;
  assert.equal(h.get("x-frame-options"), "DENY");
  assert.equal(h.get("x-content-type-options"), "nosniff");
  assert.equal(h.get("referrer-policy"), "no-referrer");
  assert.match(h.get("strict-transport-security") ?? "", /max-age=\d+/);
  assert.equal(h.get("cross-origin-opener-policy"), "same-origin");
  assert.match(h.get("content-security-policy") ?? "", /frame-ancestors 'none'/);
  assert.match(h.get("x-request-id") ?? "", /^[A-Za-z0-9._:-]+$/);
}
