// `npm run bench`: the release Worker under Miniflare/workerd directly (never `wrangler dev`,
// whose proxy caps throughput), driven by autocannon. Prints one table — requests/s, p50, p99
// and errors per scenario and concurrency, each also as a ratio to a no-op route of the same
// Worker — plus size, cold start and a memory check, then the same Worker on PostgreSQL
// (users/me, refresh, login beside D1's figures), and writes the figures to
// benches/results/<timestamp>.json so runs can be compared. Prints figures; asserts nothing.
//
//   npm run bench                      # build, then everything (a few minutes)
//   npm run bench -- --no-build --quick   # reuse build/, shorter runs, no memory check
import autocannon from "autocannon";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { startWorker, ROOT, STRONG_PASSWORD } from "../tests/helpers.mjs";
import { startPostgres } from "../scripts/postgres.mjs";

const args = new Set(process.argv.slice(2));
const QUICK = args.has("--quick");
const DURATION = QUICK ? 3 : 8;
const CONCURRENCY = [1, 8];
const MEMORY_BOUND_BYTES = 1024 * 1024;

if (!args.has("--no-build")) {
  execFileSync("bash", [join(ROOT, "scripts/build.sh")], { stdio: "inherit" });
}

// Budgets high enough that the limiter counts but never refuses during a run.
const VARS = {
  ENVIRONMENT: "development",
  PUBLIC_BASE_URL: "http://127.0.0.1",
  EMAIL_PROVIDER: "none",
  ALLOWED_HOSTS: "127.0.0.1,localhost",
  RATE_LIMIT_LOGIN: "100000000/60",
  RATE_LIMIT_LOGIN_ACCOUNT: "100000000/60",
  RATE_LIMIT_SIGNUP: "100000000/60",
  RATE_LIMIT_REFRESH: "100000000/60",
};

function wasmSize() {
  const wasm = readFileSync(join(ROOT, "build/index_bg.wasm"));
  return { raw: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length };
}

function workerdRssKiB() {
  // Miniflare runs workerd as a child of this process.
  try {
    const pids = execFileSync("pgrep", ["-P", String(process.pid), "workerd"]).toString().trim().split("\n");
    return pids.reduce((sum, pid) => {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      return sum + Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
    }, 0);
  } catch {
    return null;
  }
}

/** The median latency of `count` sequential GETs, in ms. */
async function medianMs(target, count) {
  const times = [];
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    const response = await fetch(target);
    await response.text();
    if (!response.ok) throw new Error(`${target}: ${response.status}`);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

/** The same crate's argon2id hash natively, from `cargo bench --bench domain`, in ms. */
function nativeArgon2Ms() {
  try {
    const output = execFileSync("cargo", ["bench", "--bench", "domain"], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    const match = output.match(/argon2id hash[^\n]*?([\d.]+)(ms|µs|s) per operation/);
    if (!match) return null;
    return Number(match[1]) * { s: 1000, ms: 1, "µs": 0.001 }[match[2]];
  } catch {
    return null;
  }
}

async function run(url, { path = "/", ...options }) {
  const result = await autocannon({ url: url + path, duration: DURATION, ...options });
  return {
    rps: result.requests.average,
    mean: result.latency.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + (result.non2xx ?? 0),
    total: result.requests.total,
  };
}

/** Fresh sessions of `account` for refresh chains: one per connection. */
async function freshSessions(worker, account, count) {
  const sessions = [];
  for (let i = 0; i < count; i += 1) {
    const response = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: STRONG_PASSWORD },
    });
    sessions.push(response.json.refresh_token);
  }
  return sessions;
}

/** A refresh chain per connection, each following its own successor tokens. */
function refreshScenario(sessions, concurrency) {
  const pool = sessions.slice(0, concurrency);
  return {
    path: "/api/v1/auth/refresh",
    method: "POST",
    headers: { "content-type": "application/json" },
    setupClient(client) {
      const token = pool.shift();
      client.setBody(JSON.stringify({ refresh_token: token }));
      client.on("body", (body) => {
        try {
          client.setBody(JSON.stringify({ refresh_token: JSON.parse(body).refresh_token }));
        } catch {
          // An error body keeps the last token; the error count shows it.
        }
      });
    },
  };
}

/**
 * The database-bound scenarios (users/me, refresh, login) on the Worker with its tables in
 * PostgreSQL: a throw-away server (DATABASE_URL's when set), reached through Hyperdrive.
 */
async function postgresResults() {
  const server = await startPostgres({ databaseUrl: process.env.DATABASE_URL || null });
  const worker = await startWorker({
    vars: { ...VARS, DATABASE: "postgres" },
    database: false,
    options: { hyperdrives: { HYPERDRIVE: server.url } },
  });
  try {
    const url = (await worker.mf.ready).toString().replace(/\/$/, "");
    const account = await worker.signup();
    const auth = { authorization: `Bearer ${account.access_token}` };
    const results = [];
    for (const concurrency of CONCURRENCY) {
      const sessions = await freshSessions(worker, account, concurrency);
      const scenarios = [
        ["no-op (GET /api/ping)", { path: "/api/ping" }],
        ["GET /api/v1/users/me", { path: "/api/v1/users/me", headers: auth }],
        ["POST /api/v1/auth/refresh", refreshScenario(sessions, concurrency)],
        [
          "POST /api/v1/auth/login",
          {
            path: "/api/v1/auth/login",
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ username: account.username, password: STRONG_PASSWORD }),
          },
        ],
      ];
      let ceiling;
      for (const [name, options] of scenarios) {
        const figures = await run(url, { connections: concurrency, ...options });
        if (!ceiling) ceiling = figures.rps;
        results.push({ scenario: name, concurrency, ...figures, ratio: figures.rps / ceiling });
      }
    }
    return results;
  } finally {
    await worker.dispose();
    await server.stop();
  }
}

async function main() {
  const coldStart = performance.now();
  const worker = await startWorker({ vars: VARS });
  const url = (await worker.mf.ready).toString().replace(/\/$/, "");
  const firstResponse = await fetch(`${url}/api/ping`);
  await firstResponse.text();
  const coldStartMs = performance.now() - coldStart;
  const firstRequestStart = performance.now();
  await (await fetch(`${url}/api/ping`)).text();
  const warmRequestMs = performance.now() - firstRequestStart;

  const json = { "content-type": "application/json" };
  const account = await worker.signup();
  const auth = { authorization: `Bearer ${account.access_token}` };

  // Fresh sessions for the refresh chains: one per connection.
  let sessions = await freshSessions(worker, account, Math.max(...CONCURRENCY));
  let signupCounter = 0;

  const scenarios = [
    ["no-op (GET /api/ping)", { path: "/api/ping" }],
    ["GET /api/health", { path: "/api/health" }],
    ["GET /api/v1/users/me", { path: "/api/v1/users/me", headers: auth }],
    ["POST /api/v1/auth/refresh", (concurrency) => refreshScenario(sessions, concurrency)],
    [
      "POST /api/v1/auth/login",
      {
        path: "/api/v1/auth/login",
        method: "POST",
        headers: json,
        body: JSON.stringify({ username: account.username, password: STRONG_PASSWORD }),
      },
    ],
    [
      "POST /api/v1/auth/signup",
      {
        path: "/api/v1/auth/signup",
        method: "POST",
        headers: json,
        requests: [
          {
            setupRequest(request) {
              signupCounter += 1;
              request.body = JSON.stringify({
                username: `bench_${process.pid}_${signupCounter}`,
                password: STRONG_PASSWORD,
              });
              return request;
            },
          },
        ],
      },
    ],
  ];

  const results = [];
  for (const concurrency of CONCURRENCY) {
    // Sessions are spent by a refresh run; give each concurrency level its own.
    if (concurrency !== CONCURRENCY[0]) {
      sessions = await freshSessions(worker, account, Math.max(...CONCURRENCY));
    }
    let ceiling;
    for (const [name, options] of scenarios) {
      const resolved = typeof options === "function" ? options(concurrency) : options;
      const figures = await run(url, { connections: concurrency, ...resolved });
      if (!ceiling) ceiling = figures.rps;
      results.push({ scenario: name, concurrency, ...figures, ratio: figures.rps / ceiling });
    }
  }

  // argon2id in the Worker: workerd's clock stands still while the isolate computes, so the
  // hash is timed from outside, as the development hashing route's latency minus the no-op's,
  // one request at a time.
  const argon2 = {
    worker_ms: (await medianMs(`${url}/api/v1/dev/argon2`, 15)) - (await medianMs(`${url}/api/ping`, 15)),
    native_ms: nativeArgon2Ms(),
  };
  argon2.ratio = argon2.native_ms ? argon2.worker_ms / argon2.native_ms : null;
  const loginP50 = results.find((r) => r.scenario === "POST /api/v1/auth/login" && r.concurrency === 1)?.p50;
  argon2.login_p50_over_hash = loginP50 ? loginP50 / argon2.worker_ms : null;

  // Memory: one isolate, 100,000 mixed requests after a warm-up. The bound is on the Worker's
  // own memory, its wasm linear memory (which never shrinks, so any leak in Rust shows), read
  // from the development route. workerd's process RSS is printed too, but it grows under
  // this load even for an empty JavaScript Worker in local workerd, so it bounds nothing.
  let memory = null;
  if (!QUICK) {
    const mixedRequests = [
      { path: "/api/ping" },
      { path: "/api/v1/users/me", headers: auth },
      { path: "/api/health" },
      { path: "/api/v1/nope" },
      { path: "/.well-known/jwks.json" },
      { path: "/api/v1/auth/signup", method: "POST", headers: json, body: "{" },
    ];
    const mixed = (amount) => autocannon({ url: `${url}/api/ping`, connections: 8, amount, requests: mixedRequests });
    const wasmBytes = async () => (await (await fetch(`${url}/api/v1/dev/memory`)).json()).wasm_memory_bytes;
    await mixed(10_000);
    const wasmBefore = await wasmBytes();
    const rssBefore = workerdRssKiB();
    const result = await mixed(100_000);
    const wasmAfter = await wasmBytes();
    memory = {
      requests: result.requests.total,
      errors: result.errors + result.timeouts,
      wasm_bytes_before: wasmBefore,
      wasm_bytes_after: wasmAfter,
      growth_bytes: wasmAfter - wasmBefore,
      bound_bytes: MEMORY_BOUND_BYTES,
      within_bound: wasmAfter - wasmBefore <= MEMORY_BOUND_BYTES,
      rss_kib_before: rssBefore,
      rss_kib_after: workerdRssKiB(),
    };
  }
  await worker.dispose();
  const postgres = await postgresResults();

  const size = wasmSize();
  const row = (cells, widths) => cells.map((cell, i) => String(cell).padEnd(widths[i])).join(" ");
  const widths = [30, 5, 9, 9, 8, 8, 7, 8];
  console.log();
  console.log(row(["scenario", "conc", "req/s", "mean ms", "p50 ms", "p99 ms", "errors", "vs no-op"], widths));
  for (const r of results) {
    console.log(
      row(
        [
          r.scenario,
          r.concurrency,
          r.rps.toFixed(0),
          r.mean.toFixed(2),
          r.p50,
          r.p99,
          r.errors,
          `${(r.ratio * 100).toFixed(1)}%`,
        ],
        widths,
      ),
    );
  }
  console.log();
  console.log("PostgreSQL backend (through Hyperdrive), beside D1:");
  const pgWidths = [30, 5, 9, 8, 8, 7, 8, 10];
  console.log(row(["scenario", "conc", "req/s", "p50 ms", "p99 ms", "errors", "vs no-op", "vs D1 req/s"], pgWidths));
  for (const r of postgres.filter((r) => !r.scenario.startsWith("no-op"))) {
    const d1 = results.find((other) => other.scenario === r.scenario && other.concurrency === r.concurrency);
    console.log(
      row(
        [
          r.scenario,
          r.concurrency,
          r.rps.toFixed(0),
          r.p50,
          r.p99,
          r.errors,
          `${(r.ratio * 100).toFixed(1)}%`,
          d1 ? `${((r.rps / d1.rps) * 100).toFixed(0)}%` : "n/a",
        ],
        pgWidths,
      ),
    );
  }
  console.log();
  console.log(`wasm: ${(size.raw / 1024).toFixed(0)} KiB raw, ${(size.gzip / 1024).toFixed(0)} KiB gzip`);
  console.log(`cold start (new isolate to first response): ${coldStartMs.toFixed(0)} ms; next request ${warmRequestMs.toFixed(1)} ms`);
  const ms = (value) => (value === null ? "n/a" : value.toFixed(1));
  console.log(
    `argon2id (m=19456, t=2, p=1): ${ms(argon2.worker_ms)} ms in the Worker, ${ms(argon2.native_ms)} ms natively ` +
      `(ratio ${argon2.ratio?.toFixed(2) ?? "n/a"}); login p50 = ${argon2.login_p50_over_hash?.toFixed(2) ?? "n/a"} x one hash`,
  );
  if (memory) {
    const mib = (bytes) => (bytes / 1048576).toFixed(2);
    console.log(
      `memory: ${memory.requests} mixed requests, ${memory.errors} errors; wasm linear memory ${mib(memory.wasm_bytes_before)} MiB -> ` +
        `${mib(memory.wasm_bytes_after)} MiB (growth ${mib(memory.growth_bytes)} MiB, bound ${mib(memory.bound_bytes)} MiB: ` +
        `${memory.within_bound ? "within" : "EXCEEDED"}); workerd RSS ${memory.rss_kib_before} KiB -> ${memory.rss_kib_after} KiB`,
    );
  }
  const out = join(ROOT, "benches/results");
  mkdirSync(out, { recursive: true });
  const file = join(out, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        duration_s: DURATION,
        results,
        postgres,
        size,
        cold_start_ms: coldStartMs,
        argon2,
        memory,
      },
      null,
      2,
    ),
  );
  console.log(`figures written to ${file.replace(ROOT + "/", "")}`);
}

await main();
