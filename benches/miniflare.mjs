// The bench's Miniflare: the Rust Worker from a build directory and, beside it in the same
// workerd process, the JavaScript floor Workers of benches/floors/, each reached by its own
// host name (wrk sends `Host: floor-noop.bench` and so on; anything else reaches the Rust
// Worker). One process for all, so a floor and our Worker share the runtime, the machine's
// noise and the D1 database (the floors read the Rust Worker's own tables). One floor is not
// JavaScript: rust-noop (benches/floors/rust-noop/, built by scripts/build-floors.sh) is a
// workers-rs Worker that does nothing, the fixed cost of Rust/wasm on its own.
//
// The Rust Worker's options are tests/helpers.mjs startWorker's, copied rather than imported:
// startWorker builds one Worker from build/ only, and Miniflare ignores a top-level Worker's
// options once a `workers` array is given. Keep the two in step when the Worker's bindings
// change (tests/ is not ours to edit from here).
import { Miniflare } from "miniflare";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ROOT, migrationStatements } from "../tests/helpers.mjs";

/** The Worker's settings in a bench: budgets high enough that the limiter counts but never
 * refuses during a run. */
export const BENCH_VARS = {
  ENVIRONMENT: "development",
  PUBLIC_BASE_URL: "http://127.0.0.1",
  EMAIL_PROVIDER: "none",
  ALLOWED_HOSTS: "127.0.0.1,localhost,edge-auth.bench",
  RATE_LIMIT_LOGIN: "100000000/60",
  RATE_LIMIT_LOGIN_ACCOUNT: "100000000/60",
  RATE_LIMIT_SIGNUP: "100000000/60",
  RATE_LIMIT_REFRESH: "100000000/60",
};

/**
 * The Worker's host in a wrk run. Miniflare's entry routes a request by host to a Worker
 * with routes, and sends any other to the first Worker through a fallback path that cost
 * about 0.25 ms more CPU per request here (measured: the same no-op answer, 0.24 ms routed
 * against 0.48 ms through the fallback). The floors are routed, so the Worker is too.
 */
export const WORKER_HOST = "edge-auth.bench";

/** Host names of the floors: a wrk run sends one in its Host header to reach that floor. */
export const FLOOR_HOSTS = {
  noop: "floor-noop.bench",
  "users-me": "floor-users-me.bench",
  refresh: "floor-refresh.bench",
  "rust-noop": "floor-rust-noop.bench",
};

/** Where scripts/build-floors.sh leaves the rust-noop floor (index.js, index_bg.wasm). */
export const RUST_NOOP_BUILD_DIR = join(ROOT, "benches/floors/rust-noop/build");

/** As wrangler.toml's [assets]: the Worker first, the files through its ASSETS binding. */
function assetsOptions(buildDir) {
  return {
    directory: join(buildDir, "assets"),
    binding: "ASSETS",
    routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
    assetConfig: { html_handling: "none", not_found_handling: "none" },
  };
}

/**
 * Start Miniflare with the Worker of `buildDir` (its `vars` over startWorker's defaults) on
 * D1, or on PostgreSQL through Hyperdrive when `postgresUrl` is given. `floors` adds the
 * floor Workers (D1 only: they read D1); `rustNoop` the rust-noop floor too (its build must
 * exist: the caller checks, and may run without it). Resolves to `{mf, url, d1, logs}`: `url` without a
 * trailing slash, `d1` the D1 binding (migrated; undefined on PostgreSQL), `logs` the last
 * lines workerd printed (for a failing run's message).
 */
export async function startBench({ buildDir, vars, postgresUrl = null, floors = false, rustNoop = false }) {
  const rust = {
    name: "edge-auth",
    routes: [`${WORKER_HOST}/*`],
    modules: true,
    scriptPath: join(buildDir, "index.js"),
    modulesRoot: buildDir,
    modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
    compatibilityDate: "2026-07-01",
    bindings: {
      ENVIRONMENT: "test",
      JWT_ISSUER: "https://auth.test",
      JWT_AUDIENCE: "test-app",
      JWT_SIGNING_KEY: randomBytes(32).toString("base64url"),
      IDENTIFIER_DIGEST_KEY: randomBytes(32).toString("base64url"),
      RATE_LIMIT_EMAIL: "1000/60",
      RATE_LIMIT_VERIFY: "1000/60",
      RATE_LIMIT_OAUTH: "1000/60",
      ...vars,
    },
    ...(postgresUrl ? { hyperdrives: { HYPERDRIVE: postgresUrl } } : { d1Databases: ["DB"] }),
    kvNamespaces: ["KV"],
    assets: assetsOptions(buildDir),
    durableObjects: {
      RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
      SESSION_GUARD: { className: "SessionGuard", useSQLite: true },
      METRICS: { className: "MetricsAggregator", useSQLite: true },
    },
  };
  const workers = [rust];
  if (floors) {
    const floor = (name, extra) => ({
      name: `floor-${name}`,
      modules: true,
      scriptPath: join(ROOT, "benches/floors", `${name}.js`),
      compatibilityDate: "2026-07-01",
      routes: [`${FLOOR_HOSTS[name]}/*`],
      // Every floor sits behind the same assets routing as the Rust Worker: ours pays for it
      // on every request, so the floor must too.
      assets: assetsOptions(buildDir),
      ...extra,
    });
    workers.push(
      floor("noop", {}),
      // The same binding names give the same D1 database and KV namespace as the Rust Worker's.
      floor("users-me", { d1Databases: ["DB"], kvNamespaces: ["KV"] }),
      floor("refresh", {
        d1Databases: ["DB"],
        durableObjects: { FLOOR_SESSION: { className: "FloorSession", useSQLite: true } },
      }),
    );
    if (rustNoop) {
      // The generated index.js default-exports a WorkerEntrypoint class, as the Rust Worker's
      // does; the wasm is loaded as the Rust Worker's is (its rules, its own modules root).
      workers.push(
        floor("rust-noop", {
          scriptPath: join(RUST_NOOP_BUILD_DIR, "index.js"),
          modulesRoot: RUST_NOOP_BUILD_DIR,
          modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
        }),
      );
    }
  }
  const logs = [];
  const mf = new Miniflare({
    workers,
    // workerd's output (the Worker logs a line per request) must be read, or the pipe fills;
    // the last lines are kept for a failing run's message.
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        stream.setEncoding("utf8");
        stream.on("data", (chunk) => {
          logs.push(...chunk.split("\n").filter(Boolean));
          if (logs.length > 400) logs.splice(0, logs.length - 200);
        });
      }
    },
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  let d1;
  if (!postgresUrl) {
    d1 = await mf.getD1Database("DB", "edge-auth");
    await d1.batch(migrationStatements().map((sql) => d1.prepare(sql)));
  }
  return { mf, url, d1, logs };
}
