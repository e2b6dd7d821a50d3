// Sessions: rotation under concurrency, reuse detection, sliding expiry with a cap, logout
// that takes effect now, logout everywhere, and session control — against a real database
// (D1 or PostgreSQL), KV and the SessionGuard Durable Object.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { startWorker, assertProblem, nowSeconds, sleep, STRONG_PASSWORD } from "./helpers.mjs";

describe("refresh rotation", () => {
  let worker;
  // The default grace window, for the concurrent refreshes: the object answers them one at a
  // time, each repeat after a database read, and on a loaded machine twenty of those can
  // take longer than the one second the reuse tests below need.
  let patient;
  before(async () => {
    worker = await startWorker({ vars: { REFRESH_GRACE_SECONDS: "1" } });
    patient = await startWorker();
  });
  after(async () => {
    await worker.dispose();
    await patient.dispose();
  });

  test("refresh tokens name their session and rotate on every use", async () => {
    const account = await worker.signup();
    const sid = decodeJwt(account.access_token).sid;
    assert.ok(account.refresh_token.startsWith(`${sid}.`));
    const first = await worker.refresh(account.refresh_token);
    assert.equal(first.status, 200, first.text);
    assert.notEqual(first.json.refresh_token, account.refresh_token);
    assert.equal(decodeJwt(first.json.access_token).sid, sid);
    assert.notEqual(decodeJwt(first.json.access_token).jti, decodeJwt(account.access_token).jti);
    assert.equal((await worker.me(first.json.access_token)).status, 200);
    const stored = await worker.db.query("SELECT token_hash FROM refresh_tokens WHERE session_id = ?1", sid);
    for (const row of stored) {
      assert.doesNotMatch(row.token_hash, /\./, "only digests are stored");
      assert.ok(!first.json.refresh_token.includes(row.token_hash));
    }
  });

  test("20 concurrent refreshes with one token all succeed on one chain", async () => {
    const account = await patient.signup();
    const sid = decodeJwt(account.access_token).sid;
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => patient.refresh(account.refresh_token)),
    );
    assert.deepEqual(
      responses.map((response) => response.status),
      Array(20).fill(200),
    );
    const successors = new Set(responses.map((response) => response.json.refresh_token));
    assert.equal(successors.size, 1, "everyone gets the same successor: no fork");
    for (const response of responses) {
      assert.equal(decodeJwt(response.json.access_token).sid, sid);
    }
    assert.equal(
      await patient.count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE session_id = ?1 AND used_at IS NULL", sid),
      1,
      "exactly one live refresh token for the session",
    );
    const [successor] = successors;
    const next = await patient.refresh(successor);
    assert.equal(next.status, 200);
    assert.equal(decodeJwt(next.json.access_token).sid, sid);
  });

  test("the old token after the grace window is reuse: 401 and the session dies", async () => {
    const account = await worker.signup();
    const sid = decodeJwt(account.access_token).sid;
    const rotated = await worker.refresh(account.refresh_token);
    assert.equal(rotated.status, 200);
    await sleep(2100);
    const reused = await worker.refresh(account.refresh_token);
    const body = assertProblem(assert, reused, 401);
    assert.equal(body.detail, "Invalid or expired refresh token");
    const row = await worker.sessionRow(sid);
    assert.notEqual(row.revoked_at, null);
    assert.equal(row.revoked_reason, "refresh_token_reuse");
    assert.equal((await worker.refresh(rotated.json.refresh_token)).status, 401);
    assert.equal((await worker.me(rotated.json.access_token)).status, 401);
    await sleep(50);
    assert.ok(
      worker.logs.some((line) => line.includes('"refresh_token_reuse"') && line.includes(sid)),
      "a security event is logged",
    );
  });

  test("a forged secret or another session's id cannot kill a session", async () => {
    const victim = await worker.signup();
    const attacker = await worker.signup();
    const victimSid = decodeJwt(victim.access_token).sid;
    const attackerSecret = attacker.refresh_token.split(".")[1];
    const tampered = victim.refresh_token.slice(0, -1) + (victim.refresh_token.endsWith("A") ? "B" : "A");
    for (const token of [tampered, `${victimSid}.${attackerSecret}`]) {
      assertProblem(assert, await worker.refresh(token), 401);
    }
    assert.equal((await worker.sessionRow(victimSid)).revoked_at, null);
    assert.equal((await worker.refresh(victim.refresh_token)).status, 200);
    assert.equal((await worker.refresh(attacker.refresh_token)).status, 200);
  });

  test("malformed refresh tokens are refused before any lookup", async () => {
    for (const token of ["", "x", "a".repeat(43), "not-a-session.secret", "🔑".repeat(20)]) {
      assertProblem(assert, await worker.refresh(token), 401);
    }
    assertProblem(assert, await worker.request("POST", "/api/v1/auth/refresh", { body: {} }), 422);
    assertProblem(
      assert,
      await worker.request("POST", "/api/v1/auth/refresh", { body: { refresh_token: 7 } }),
      422,
    );
  });

  test("a refresh replayed inside the grace window after logout is refused", async () => {
    const account = await patient.signup();
    const rotated = await patient.refresh(account.refresh_token);
    assert.equal(rotated.status, 200);
    const logout = await patient.request("POST", "/api/v1/auth/logout", {
      token: rotated.json.access_token,
    });
    assert.equal(logout.status, 204);
    assertProblem(assert, await patient.refresh(account.refresh_token), 401);
    assertProblem(assert, await patient.refresh(rotated.json.refresh_token), 401);
  });
});

describe("session lifetimes", () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: { SESSION_IDLE_TTL_SECONDS: "3600", SESSION_MAX_LIFETIME_SECONDS: "7200" },
    });
  });
  after(() => worker.dispose());

  test("a new session expires idle after the idle TTL, absolutely after the lifetime", async () => {
    const account = await worker.signup();
    const row = await worker.sessionRow(decodeJwt(account.access_token).sid);
    assert.equal(row.idle_expires_at - row.created_at, 3600);
    assert.equal(row.absolute_expires_at - row.created_at, 7200);
  });

  test("each refresh slides the idle expiry, never past the absolute one", async () => {
    const account = await worker.signup();
    const sid = decodeJwt(account.access_token).sid;
    const now = nowSeconds();
    await worker.db.run("UPDATE sessions SET idle_expires_at = ?2 WHERE id = ?1", sid, now + 60);
    const first = await worker.refresh(account.refresh_token);
    assert.equal(first.status, 200);
    const slid = await worker.sessionRow(sid);
    assert.ok(slid.idle_expires_at >= now + 3600 - 5, "pushed forward by the idle TTL");
    await worker.db.run("UPDATE sessions SET absolute_expires_at = ?2 WHERE id = ?1", sid, now + 100);
    const second = await worker.refresh(first.json.refresh_token);
    assert.equal(second.status, 200);
    const capped = await worker.sessionRow(sid);
    assert.equal(capped.idle_expires_at, now + 100, "capped at the absolute expiry");
    const token = await worker.db.first(
      "SELECT expires_at FROM refresh_tokens WHERE session_id = ?1 AND used_at IS NULL",
      sid,
    );
    assert.equal(token.expires_at, now + 100, "the refresh token dies with its session");
  });

  for (const column of ["idle_expires_at", "absolute_expires_at"]) {
    test(`a session past its ${column} refuses refresh and access`, async () => {
      const account = await worker.signup();
      const sid = decodeJwt(account.access_token).sid;
      await worker.db.run(`UPDATE sessions SET ${column} = ?2 WHERE id = ?1`, sid, nowSeconds() - 1);
      assertProblem(assert, await worker.refresh(account.refresh_token), 401);
      const denied = assertProblem(assert, await worker.me(account.access_token), 401);
      assert.equal(denied.detail, "Session is no longer valid");
    });
  }

  test("an expired refresh token is refused even while its session lives", async () => {
    const account = await worker.signup();
    await worker.db.run(
      "UPDATE refresh_tokens SET expires_at = ?2 WHERE session_id = ?1",
      decodeJwt(account.access_token).sid,
      nowSeconds() - 1,
    );
    assertProblem(assert, await worker.refresh(account.refresh_token), 401);
    assert.equal((await worker.me(account.access_token)).status, 200);
  });
});

describe("logout", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("logout ends this access token and session at once, not the others", async () => {
    const account = await worker.signup();
    const other = await worker.login(account.username);
    const logout = await worker.request("POST", "/api/v1/auth/logout", {
      token: account.access_token,
    });
    assert.equal(logout.status, 204);
    const denied = assertProblem(assert, await worker.me(account.access_token), 401);
    assert.equal(denied.detail, "Token has been revoked");
    assertProblem(assert, await worker.refresh(account.refresh_token), 401);
    const jti = decodeJwt(account.access_token).jti;
    const kv = await worker.mf.getKVNamespace("KV");
    const entry = await kv.getWithMetadata(`revoked:${jti}`);
    assert.equal(entry.value, "1", "the jti is on the KV revocation list");
    assert.equal((await worker.me(other.access_token)).status, 200);
    assert.equal((await worker.refresh(other.refresh_token)).status, 200);
    const row = await worker.sessionRow(decodeJwt(account.access_token).sid);
    assert.equal(row.revoked_reason, "logout");
  });

  test("logout needs a valid token", async () => {
    assertProblem(assert, await worker.request("POST", "/api/v1/auth/logout"), 401);
    const account = await worker.signup();
    await worker.request("POST", "/api/v1/auth/logout", { token: account.access_token });
    assertProblem(
      assert,
      await worker.request("POST", "/api/v1/auth/logout", { token: account.access_token }),
      401,
    );
  });

  test("logout-all ends every session and every earlier token of the account only", async () => {
    const account = await worker.signup();
    const second = await worker.login(account.username);
    const third = await worker.login(account.username);
    const bystander = await worker.signup();
    const response = await worker.request("POST", "/api/v1/auth/logout-all", {
      token: second.access_token,
    });
    assert.equal(response.status, 204);
    for (const session of [account, second, third]) {
      assertProblem(assert, await worker.me(session.access_token), 401);
      assertProblem(assert, await worker.refresh(session.refresh_token), 401);
    }
    const rows = await worker.db.query("SELECT revoked_reason FROM sessions WHERE user_id = ?1", account.user.id);
    assert.equal(rows.length, 3);
    assert.ok(rows.every((row) => row.revoked_reason === "logout_all"));
    assert.equal((await worker.me(bystander.access_token)).status, 200);
    const fresh = await worker.login(account.username);
    assert.equal((await worker.me(fresh.access_token)).status, 200, "a new login works again");
  });

  test("a password change ends every other session but keeps this one", async () => {
    const account = await worker.signup();
    const other = await worker.login(account.username);
    const change = await worker.request("POST", "/api/v1/auth/password/change", {
      token: account.access_token,
      body: { current_password: STRONG_PASSWORD, new_password: "a brand new passphrase" },
    });
    assert.equal(change.status, 200, change.text);
    assert.equal(change.json.sessions_revoked, 1);
    assertProblem(assert, await worker.refresh(other.refresh_token), 401);
    assertProblem(assert, await worker.me(other.access_token), 401);
    assert.equal((await worker.me(account.access_token)).status, 200);
    assert.equal((await worker.refresh(account.refresh_token)).status, 200);
  });
});

describe("session control", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("sessions are listed with their devices and the current one marked", async () => {
    const account = await worker.signup();
    const phone = await worker.login(account.username, { "user-agent": "PhoneApp/2.0" });
    const list = await worker.request("GET", "/api/v1/auth/sessions", {
      token: phone.access_token,
    });
    assert.equal(list.status, 200);
    assert.equal(list.headers.get("cache-control"), "no-store");
    const sessions = list.json.sessions;
    assert.equal(sessions.length, 2);
    const current = sessions.filter((session) => session.current);
    assert.equal(current.length, 1);
    assert.equal(current[0].id, decodeJwt(phone.access_token).sid);
    assert.equal(current[0].user_agent, "PhoneApp/2.0");
    for (const session of sessions) {
      assert.match(session.created_at, /^\d{4}-\d\d-\d\dT/);
      assert.match(session.expires_at, /^\d{4}-\d\d-\d\dT/);
      assert.match(session.absolute_expires_at, /^\d{4}-\d\d-\d\dT/);
      assert.ok(!("user_id" in session));
    }
  });

  test("revoking one of your own other sessions ends its tokens", async () => {
    const account = await worker.signup();
    const other = await worker.login(account.username);
    const otherSid = decodeJwt(other.access_token).sid;
    const response = await worker.request("DELETE", `/api/v1/auth/sessions/${otherSid}`, {
      token: account.access_token,
    });
    assert.equal(response.status, 204);
    assertProblem(assert, await worker.me(other.access_token), 401);
    assertProblem(assert, await worker.refresh(other.refresh_token), 401);
    assert.equal((await worker.me(account.access_token)).status, 200);
    const list = await worker.request("GET", "/api/v1/auth/sessions", {
      token: account.access_token,
    });
    assert.deepEqual(
      list.json.sessions.map((session) => session.id),
      [decodeJwt(account.access_token).sid],
    );
  });

  test("revoking the current session ends the calling token too", async () => {
    const account = await worker.signup();
    const sid = decodeJwt(account.access_token).sid;
    const response = await worker.request("DELETE", `/api/v1/auth/sessions/${sid}`, {
      token: account.access_token,
    });
    assert.equal(response.status, 204);
    assertProblem(assert, await worker.me(account.access_token), 401);
  });

  test("another user's session, an unknown id and a malformed id are all 404", async () => {
    const owner = await worker.signup();
    const stranger = await worker.signup();
    const ownerSid = decodeJwt(owner.access_token).sid;
    for (const id of [ownerSid, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "not-a-uuid"]) {
      const response = await worker.request("DELETE", `/api/v1/auth/sessions/${id}`, {
        token: stranger.access_token,
      });
      assertProblem(assert, response, 404);
    }
    assert.equal((await worker.me(owner.access_token)).status, 200, "the owner is untouched");
  });

  test("session routes need a token", async () => {
    assertProblem(assert, await worker.request("GET", "/api/v1/auth/sessions"), 401);
    assertProblem(
      assert,
      await worker.request("DELETE", "/api/v1/auth/sessions/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"),
      401,
    );
  });
});

describe("refresh rate limit per session", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { RATE_LIMIT_REFRESH: "3/60" } });
  });
  after(() => worker.dispose());

  test("a session's refreshes are budgeted; other sessions are not affected", async () => {
    const account = await worker.signup();
    let token = account.refresh_token;
    let access;
    for (let i = 0; i < 3; i += 1) {
      const response = await worker.refresh(token);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("ratelimit-limit"), "3");
      assert.equal(response.headers.get("ratelimit-remaining"), String(2 - i));
      token = response.json.refresh_token;
      access = response.json.access_token;
    }
    const limited = await worker.refresh(token);
    assert.equal(assertProblem(assert, limited, 429).type, "urn:edge-auth:problem:rate_limited");
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    assert.equal(limited.headers.get("ratelimit-remaining"), "0");
    // Refused before the rotation: the session lives on.
    assert.equal((await worker.me(access)).status, 200);
    const other = await worker.signup();
    assert.equal((await worker.refresh(other.refresh_token)).status, 200);
  });
});

describe("revocation answers per isolate", () => {
  /** Put a token on the list the way another location would: straight into KV. */
  async function revokeElsewhere(worker, accessToken) {
    const kv = await worker.mf.getKVNamespace("KV");
    await kv.put(`revoked:${decodeJwt(accessToken).jti}`, "1", { expirationTtl: 600 });
  }

  test("an isolate reuses its answer for REVOCATION_CACHE_SECONDS, then asks KV again", async () => {
    const worker = await startWorker({ vars: { REVOCATION_CACHE_SECONDS: "1" } });
    try {
      const account = await worker.signup();
      assert.equal((await worker.me(account.access_token)).status, 200);
      await revokeElsewhere(worker, account.access_token);
      await sleep(1_100);
      const refused = await worker.me(account.access_token);
      assert.equal(refused.status, 401);
      assert.equal(refused.json.detail, "Token has been revoked");
    } finally {
      await worker.dispose();
    }
  });

  test("within the window the remembered answer stands; this isolate's own logout does not wait", async () => {
    const worker = await startWorker({ vars: { REVOCATION_CACHE_SECONDS: "60" } });
    try {
      const account = await worker.signup();
      assert.equal((await worker.me(account.access_token)).status, 200);
      await revokeElsewhere(worker, account.access_token);
      // KV itself may take up to 60 s to carry a revocation between locations; the cache
      // bounds the extra delay to its window.
      assert.equal((await worker.me(account.access_token)).status, 200);

      const other = await worker.login(account.username);
      assert.equal((await worker.me(other.access_token)).status, 200);
      assert.equal((await worker.request("POST", "/api/v1/auth/logout", { token: other.access_token })).status, 204);
      assert.equal((await worker.me(other.access_token)).status, 401);
    } finally {
      await worker.dispose();
    }
  });

  test("REVOCATION_CACHE_SECONDS=0 asks KV on every request", async () => {
    const worker = await startWorker({ vars: { REVOCATION_CACHE_SECONDS: "0" } });
    try {
      const account = await worker.signup();
      assert.equal((await worker.me(account.access_token)).status, 200);
      await revokeElsewhere(worker, account.access_token);
      assert.equal((await worker.me(account.access_token)).status, 401);
    } finally {
      await worker.dispose();
    }
  });
});
