// Bench floor "refresh": the storage calls of POST /api/v1/auth/refresh and nothing else.
// One Durable Object call per request (a DO per session, SQLite-backed, as our SessionGuard),
// and in it one D1 batch of the same four statements as rotate_refresh_token in
// src/store/d1/sessions.rs, on the real tables: consume the presented token, slide the
// session, insert the successor, read the account back through the join.
//
// The token is `<session id>.<token hash>`: the floor stores the hash as is (no SHA-256, no
// random 32 bytes, no encoding: those are our costs). Its answer carries the successor the
// same way, so benches/wrk/refresh.lua drives it exactly as it drives the Worker.
import { DurableObject } from "cloudflare:workers";

const IDLE_TTL_SECONDS = 30 * 24 * 3600;
const NOT_BANNED = "(u.banned_at IS NULL OR (u.banned_until IS NOT NULL AND u.banned_until <= ?1))";
const USER_COLUMNS =
  "u.id, u.username, u.email, u.email_verified, u.created_at, u.updated_at, " +
  "(SELECT group_concat(role, ',') FROM user_roles WHERE user_id = u.id) AS roles, " +
  "u.banned_at, u.banned_until, u.ban_reason, u.password_hash";
const LIVE_SESSION =
  "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id " +
  "WHERE s.id = ?2 AND s.revoked_at IS NULL " +
  `AND s.idle_expires_at > ?1 AND s.absolute_expires_at > ?1 AND ${NOT_BANNED}`;

export class FloorSession extends DurableObject {
  async fetch(request) {
    const { session, presented } = await request.json();
    const now = Math.floor(Date.now() / 1000);
    const successor = crypto.randomUUID();
    const db = this.env.DB;
    const results = await db.batch([
      db.prepare(
        "UPDATE refresh_tokens SET used_at = ?1, replaced_by = ?4 " +
          "WHERE token_hash = ?3 AND session_id = ?2 AND used_at IS NULL AND expires_at > ?1 " +
          `AND EXISTS (${LIVE_SESSION})`,
      ).bind(now, session, presented, successor),
      db.prepare(
        "UPDATE sessions SET last_used_at = ?1, idle_expires_at = MIN(?1 + ?5, absolute_expires_at) " +
          "WHERE id = ?2 AND EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?3 AND replaced_by = ?4)",
      ).bind(now, session, presented, successor, IDLE_TTL_SECONDS),
      db.prepare(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) " +
          "SELECT ?4, s.id, ?1, s.idle_expires_at FROM sessions s " +
          "WHERE s.id = ?2 AND EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?3 AND replaced_by = ?4)",
      ).bind(now, session, presented, successor),
      db.prepare(
        `SELECT ${USER_COLUMNS} FROM refresh_tokens rt ` +
          "JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id WHERE rt.token_hash = ?1",
      ).bind(successor),
    ]);
    const user = results[3].results[0];
    if (!user) return Response.json({ error: "invalid_grant" }, { status: 401 });
    return Response.json({ refresh_token: `${session}.${successor}`, user_id: user.id });
  }
}

export default {
  async fetch(request, env) {
    const { refresh_token: token = "" } = await request.json();
    const dot = token.indexOf(".");
    if (dot < 1) return Response.json({ error: "invalid_grant" }, { status: 401 });
    const session = token.slice(0, dot);
    const stub = env.FLOOR_SESSION.get(env.FLOOR_SESSION.idFromName(session));
    return stub.fetch("https://floor/rotate", {
      method: "POST",
      body: JSON.stringify({ session, presented: token.slice(dot + 1) }),
    });
  },
};
