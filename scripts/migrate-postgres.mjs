// Applies the PostgreSQL schema (migrations/postgres/NNNN_name.sql, in order) to the server
// at DATABASE_URL: each file not yet recorded in `schema_migrations` runs in its own
// transaction together with its record, so a file is either applied and recorded or neither.
// Safe to run twice (the second run applies nothing and says so) and concurrently (a
// session-level advisory lock makes a second runner wait for the first).
//
//   DATABASE_URL=postgres://user:password@host:port/db npm run migrate:postgres
//
// Also a module: `migrate(databaseUrl, {directory, log})` resolves to
// `{applied, alreadyApplied}` (lists of versions, i.e. file names without `.sql`).
import pg from "pg";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "migrations", "postgres");

/** Key of the advisory lock that serialises runners (not the schema's last-admin lock). */
const LOCK_KEY = "edge_auth:schema_migrations";

/** The migration files of `directory`, as `{version, path}` in the order they apply. */
export function migrationFiles(directory = MIGRATIONS_DIR) {
  return readdirSync(directory)
    .filter((name) => /^\d+_[\w-]+\.sql$/.test(name))
    .sort()
    .map((name) => ({ version: name.replace(/\.sql$/, ""), path: join(directory, name) }));
}

/**
 * Apply every migration of `directory` not yet recorded at `databaseUrl`. Resolves to
 * `{applied, alreadyApplied}`; rejects (after rolling back that file) on the first failure,
 * naming the file.
 */
export async function migrate(databaseUrl, { directory = MIGRATIONS_DIR, log = () => {} } = {}) {
  if (!databaseUrl) throw new Error("no database URL: set DATABASE_URL");
  const files = migrationFiles(directory);
  const client = new pg.Client({ connectionString: databaseUrl, application_name: "edge-auth-migrate" });
  await client.connect();
  try {
    // Session-level (not transaction-level): held across the per-file transactions.
    await client.query("SELECT pg_advisory_lock(hashtext($1))", [LOCK_KEY]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version     text PRIMARY KEY,
           applied_at  bigint NOT NULL
         )`,
      );
      const { rows } = await client.query("SELECT version FROM schema_migrations");
      const recorded = new Set(rows.map((row) => row.version));
      const applied = [];
      const alreadyApplied = [];
      for (const { version, path } of files) {
        if (recorded.has(version)) {
          alreadyApplied.push(version);
          continue;
        }
        const sql = readFileSync(path, "utf8");
        await client.query("BEGIN");
        try {
          // No parameters: the simple protocol, which runs a file of many statements.
          await client.query(sql);
          await client.query(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, floor(extract(epoch FROM clock_timestamp()))::bigint)",
            [version],
          );
          await client.query("COMMIT");
        } catch (error) {
          await client.query("ROLLBACK").catch(() => {});
          error.message = `migration ${version} failed, nothing of it applied: ${error.message}`;
          throw error;
        }
        applied.push(version);
        log(`applied ${version}`);
      }
      if (applied.length === 0) {
        log(`schema up to date: nothing to apply (${alreadyApplied.length} migrations already applied)`);
      }
      return { applied, alreadyApplied };
    } finally {
      await client.query("SELECT pg_advisory_unlock(hashtext($1))", [LOCK_KEY]).catch(() => {});
    }
  } finally {
    await client.end();
  }
}

/** The URL without its password, for messages. */
export function redact(databaseUrl) {
  try {
    const url = new URL(databaseUrl);
    if (url.password) url.password = "***";
    return url.toString();
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    console.error("[migrate:postgres] set DATABASE_URL=postgres://user:password@host:port/database");
    console.error("[migrate:postgres] (node scripts/postgres.mjs starts a throw-away server and prints one)");
    process.exit(2);
  }
  try {
    console.error(`[migrate:postgres] ${redact(databaseUrl)}`);
    await migrate(databaseUrl, { log: (line) => console.error(`[migrate:postgres] ${line}`) });
  } catch (error) {
    console.error(`[migrate:postgres] ${error.message}`);
    process.exit(1);
  }
}
