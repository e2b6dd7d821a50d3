// A small dialect-neutral way for a suite to read and write the Worker's database directly,
// whichever backend the Worker runs on: D1 (a Miniflare D1 binding, as `worker.db` today)
// or PostgreSQL (a connection string, e.g. from scripts/postgres.mjs).
//
//   const db = d1Database(worker.db);            // or: postgresDatabase(url)
//   const rows = await db.query("SELECT id, email_verified FROM users WHERE username = ?1", name);
//   const row = await db.first("SELECT * FROM users WHERE id = ?1", id);   // or null
//   const changed = await db.run("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1", id, now);
//   await db.batch([["INSERT ...", a, b], ["INSERT ...", c]]);   // all or nothing
//   await db.close();
//
// What is made the same on both:
// - Placeholders: write `?1`, `?2`, ... (SQLite's numbered form, which D1 understands); on
//   PostgreSQL they become `$1`, `$2`. A bare `?` is numbered in order. Text inside quotes and
//   comments is left alone.
// - Booleans are JavaScript booleans, both ways. Rows give `email_verified` (every column in
//   BOOLEAN_COLUMNS) as true/false on both backends: D1's 0/1 is converted. A boolean
//   parameter is bound as 1/0 on D1 and as a boolean on PostgreSQL, so compare flags with a
//   parameter (`email_verified = ?2`, bound to true) or with TRUE/FALSE, never with 1/0,
//   which PostgreSQL refuses for a boolean column.
// - Integers (bigint: unix seconds, counts, COUNT(*)) are JavaScript numbers on both, as D1
//   gives them (node-postgres would give strings); they stay exact up to 2^53.
// - `run` resolves to the number of rows changed; `batch` runs its statements atomically
//   (D1's batch; one transaction on PostgreSQL) and resolves to each one's changes.
//
// What stays dialect-specific is the SQL itself beyond that: INSERT OR IGNORE (use
// INSERT ... ON CONFLICT DO NOTHING, which both accept), sqlite_master, rowid, strftime.
// `db.dialect` ("sqlite" or "postgres") lets a suite branch where it must.
import pg from "pg";

/** Columns that are boolean on PostgreSQL and 0/1 integers on D1. */
export const BOOLEAN_COLUMNS = new Set(["email_verified", "backup_eligible", "backed_up"]);

/**
 * `sql` with SQLite placeholders (`?NNN`, or `?` numbered in order) written as PostgreSQL's
 * `$NNN`, outside string literals, quoted identifiers and comments.
 */
export function toPostgresPlaceholders(sql) {
  let out = "";
  let next = 1;
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (ch === "'" || ch === '"') {
      // A quoted literal or identifier, with doubled quotes inside.
      let end = i + 1;
      for (;;) {
        end = sql.indexOf(ch, end);
        if (end === -1) {
          end = sql.length;
          break;
        }
        if (sql[end + 1] === ch) end += 2;
        else {
          end += 1;
          break;
        }
      }
      out += sql.slice(i, end);
      i = end;
    } else if (ch === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      const stop = end === -1 ? sql.length : end;
      out += sql.slice(i, stop);
      i = stop;
    } else if (ch === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      const stop = end === -1 ? sql.length : end + 2;
      out += sql.slice(i, stop);
      i = stop;
    } else if (ch === "?") {
      const digits = /^\d+/.exec(sql.slice(i + 1))?.[0];
      if (digits) {
        out += `$${digits}`;
        i += 1 + digits.length;
      } else {
        out += `$${next}`;
        next += 1;
        i += 1;
      }
    } else {
      out += ch;
      i += 1;
    }
  }
  return out;
}

/** A D1 row with its boolean columns as booleans. */
function normaliseD1Row(row) {
  if (row === null || row === undefined) return row;
  for (const column of BOOLEAN_COLUMNS) {
    if (column in row && (row[column] === 0 || row[column] === 1)) row[column] = row[column] === 1;
  }
  return row;
}

/** Parameters as D1 binds them: booleans as 1/0, undefined as NULL. */
const d1Params = (params) =>
  params.map((value) => (value === undefined ? null : typeof value === "boolean" ? Number(value) : value));

/** The helper over a Miniflare D1 binding (`worker.db`, `mf.getD1Database("DB")`). */
export function d1Database(d1) {
  const statement = (sql, params) => d1.prepare(sql).bind(...d1Params(params));
  const query = async (sql, ...params) => {
    const { results } = await statement(sql, params).all();
    return results.map(normaliseD1Row);
  };
  return {
    dialect: "sqlite",
    query,
    async first(sql, ...params) {
      return (await query(sql, ...params))[0] ?? null;
    },
    async run(sql, ...params) {
      const result = await statement(sql, params).run();
      return result.meta.changes;
    },
    async batch(statements) {
      const results = await d1.batch(statements.map(([sql, ...params]) => statement(sql, params)));
      return results.map((result) => result.meta.changes);
    },
    async close() {},
  };
}

/** int8 (bigint, COUNT(*)) as a number, as D1 gives it. */
const INT8_OID = 20;
const types = {
  getTypeParser(oid, format) {
    if (oid === INT8_OID && format !== "binary") return (text) => (text === null ? null : Number(text));
    return pg.types.getTypeParser(oid, format);
  },
};

/** Parameters as PostgreSQL binds them: undefined as NULL. */
const pgParams = (params) => params.map((value) => (value === undefined ? null : value));

/**
 * The helper over PostgreSQL: `target` is a connection string (a pool of up to `max`
 * connections is opened, and closed by `close()`) or an existing `pg.Pool` (left open).
 */
export function postgresDatabase(target, { max = 4 } = {}) {
  const owned = typeof target === "string";
  const pool = owned ? new pg.Pool({ connectionString: target, max, types }) : target;
  const exec = (client, sql, params) =>
    client.query({ text: toPostgresPlaceholders(sql), values: pgParams(params), types });
  const query = async (sql, ...params) => (await exec(pool, sql, params)).rows;
  return {
    dialect: "postgres",
    pool,
    query,
    async first(sql, ...params) {
      return (await query(sql, ...params))[0] ?? null;
    },
    async run(sql, ...params) {
      return (await exec(pool, sql, params)).rowCount ?? 0;
    },
    async batch(statements) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const changes = [];
        for (const [sql, ...params] of statements) {
          changes.push((await exec(client, sql, params)).rowCount ?? 0);
        }
        await client.query("COMMIT");
        return changes;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
    async close() {
      if (owned) await pool.end();
    },
  };
}
