// The audit log: one entry per audited action — who, what, to whom, when, from which IP,
// colo and request — written only when the change happened, never holding a secret; and
// `GET /api/v1/admin/audit` with its filters and pagination.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { decodeJwt } from "jose";
import { startWorker, assertProblem, uniqueName, sleep, STRONG_PASSWORD } from "./helpers.mjs";

const ADMIN = "/api/v1/admin";
const IP = "203.0.113.7";
const COLO = "AMS";

describe("audit log", () => {
  let worker;
  let admin;
  before(async () => {
    // No grace window: a refresh token presented again a second later is reuse.
    worker = await startWorker({ vars: { REFRESH_GRACE_SECONDS: "0" } });
    admin = await worker.admin();
  });
  after(() => worker.dispose());

  /** A request from the test client, tagged with its own request id; returns [response, id]. */
  async function send(method, path, { body, token } = {}) {
    const requestId = `req-${randomUUID()}`;
    const response = await worker.request(method, path, {
      body,
      token,
      headers: { "x-request-id": requestId, "cf-connecting-ip": IP },
      cf: { colo: COLO },
    });
    return [response, requestId];
  }

  async function entriesFor(userId) {
    const response = await worker.request("GET", `${ADMIN}/audit?user=${userId}&per_page=100`, {
      token: admin.access_token,
    });
    assert.equal(response.status, 200, response.text);
    return response.json.entries;
  }

  test("every audited action writes one entry naming actor, target and origin", async () => {
    const username = uniqueName("audited");
    const email = `${username}@example.com`;
    const expected = []; // [action, requestId, actor ("self" | "admin" | null), details subset]
    const expect = (action, requestId, actor, details = {}) =>
      expected.push({ action, requestId, actor, details });

    const [signup, r1] = await send("POST", "/api/v1/auth/signup", {
      body: { username, email, password: STRONG_PASSWORD },
    });
    assert.equal(signup.status, 201, signup.text);
    const id = signup.json.user.id;
    expect("user.signup", r1, "self", { session_id: decodeJwt(signup.json.access_token).sid });

    const [login, r2] = await send("POST", "/api/v1/auth/login", {
      body: { email, password: STRONG_PASSWORD },
    });
    assert.equal(login.status, 200);
    expect("user.login", r2, "self", { session_id: decodeJwt(login.json.access_token).sid });

    const [wrong, r3] = await send("POST", "/api/v1/auth/login", {
      body: { username, password: "not the right password" },
    });
    assert.equal(wrong.status, 401);
    expect("user.login_failed", r3, null, { reason: "wrong_password" });

    const [changed, r4] = await send("POST", "/api/v1/auth/password/change", {
      token: login.json.access_token,
      body: { current_password: STRONG_PASSWORD, new_password: "another long passphrase" },
    });
    assert.equal(changed.status, 200, changed.text);
    expect("user.password_changed", r4, "self");

    const second = (await worker.attemptLogin(username, "another long passphrase")).json;
    expect("user.login", null, "self");
    const secondSid = decodeJwt(second.access_token).sid;
    const [revokedOwn, r5] = await send("DELETE", `/api/v1/auth/sessions/${secondSid}`, {
      token: login.json.access_token,
    });
    assert.equal(revokedOwn.status, 204);
    expect("session.revoked", r5, "self", { session_id: secondSid, reason: "revoked_by_user" });
    // Revoking it again changes nothing and records nothing.
    const [again] = await send("DELETE", `/api/v1/auth/sessions/${secondSid}`, {
      token: login.json.access_token,
    });
    assert.equal(again.status, 404);

    const [logout, r6] = await send("POST", "/api/v1/auth/logout", { token: login.json.access_token });
    assert.equal(logout.status, 204);
    expect("user.logout", r6, "self", { session_id: decodeJwt(login.json.access_token).sid });

    // The password change ended the signup's session; log in once more to end them all.
    const fourth = (await worker.attemptLogin(username, "another long passphrase")).json;
    expect("user.login", null, "self");
    const [logoutAll, r7] = await send("POST", "/api/v1/auth/logout-all", {
      token: fourth.access_token,
    });
    assert.equal(logoutAll.status, 204);
    expect("session.revoked_all", r7, "self", { reason: "logout_all" });

    const token = admin.access_token;
    const [updated, r8] = await send("PATCH", `${ADMIN}/users/${id}`, { token, body: { email_verified: true } });
    assert.equal(updated.status, 200);
    expect("user.updated", r8, "admin", { fields: ["email_verified"] });

    const [granted, r9] = await send("POST", `${ADMIN}/users/${id}/roles`, { token, body: { role: "admin" } });
    assert.equal(granted.status, 201);
    expect("user.role_granted", r9, "admin", { role: "admin" });
    const [grantedAgain] = await send("POST", `${ADMIN}/users/${id}/roles`, { token, body: { role: "admin" } });
    assert.equal(grantedAgain.status, 200, "a no-op grant records nothing");

    const [removed, r10] = await send("DELETE", `${ADMIN}/users/${id}/roles/admin`, { token });
    assert.equal(removed.status, 200);
    expect("user.role_revoked", r10, "admin", { role: "admin" });

    const fresh = (await worker.attemptLogin(username, "another long passphrase")).json;
    expect("user.login", null, "self");
    const [banned, r11] = await send("POST", `${ADMIN}/users/${id}/ban`, {
      token,
      body: { until: "2999-01-01T00:00:00Z", reason: "testing" },
    });
    assert.equal(banned.status, 200, banned.text);
    expect("user.banned", r11, "admin", { until: "2999-01-01T00:00:00Z", reason: "testing" });

    const [bannedLogin, r12] = await send("POST", "/api/v1/auth/login", {
      body: { username, password: "another long passphrase" },
    });
    assert.equal(bannedLogin.status, 403);
    expect("user.login_failed", r12, null, { reason: "banned" });

    const [unbanned, r13] = await send("DELETE", `${ADMIN}/users/${id}/ban`, { token });
    assert.equal(unbanned.status, 200);
    expect("user.unbanned", r13, "admin");
    const [unbannedAgain] = await send("DELETE", `${ADMIN}/users/${id}/ban`, { token });
    assert.equal(unbannedAgain.status, 200, "a no-op unban records nothing");

    const third = (await worker.attemptLogin(username, "another long passphrase")).json;
    expect("user.login", null, "self");
    const thirdSid = decodeJwt(third.access_token).sid;
    const [revokedOne, r14] = await send("DELETE", `${ADMIN}/users/${id}/sessions/${thirdSid}`, { token });
    assert.equal(revokedOne.status, 204);
    expect("session.revoked", r14, "admin", { session_id: thirdSid, reason: "revoked_by_admin" });

    const [revokedAll, r15] = await send("DELETE", `${ADMIN}/users/${id}/sessions`, { token });
    assert.equal(revokedAll.status, 200);
    expect("session.revoked_all", r15, "admin", { reason: "revoked_by_admin" });

    const [deleted, r16] = await send("DELETE", `${ADMIN}/users/${id}`, { token });
    assert.equal(deleted.status, 204);
    expect("user.deleted", r16, "admin", { username });
    assert.ok(fresh.access_token, "logins in between succeeded");

    const entries = await entriesFor(id);
    assert.deepEqual(
      entries.map((entry) => entry.action),
      expected.map((entry) => entry.action).reverse(),
      "one entry per change, newest first",
    );
    const chronological = [...entries].reverse();
    expected.forEach((want, index) => {
      const entry = chronological[index];
      const label = `${want.action} #${index}`;
      assert.equal(entry.target_id, id, label);
      const actor = want.actor === "self" ? id : want.actor === "admin" ? admin.user.id : null;
      assert.equal(entry.actor_id, actor, label);
      if (want.requestId) {
        assert.equal(entry.request_id, want.requestId, label);
        assert.equal(entry.ip, IP, label);
        assert.equal(entry.colo, COLO, label);
      }
      assert.match(entry.occurred_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, label);
      for (const [key, value] of Object.entries(want.details)) {
        assert.deepEqual(entry.details[key], value, `${label}: details.${key}`);
      }
    });
    assert.ok(entries.every((entry, i) => i === 0 || entry.id < entries[i - 1].id));
  });

  test("a login for an unknown account is recorded with a masked identifier only", async () => {
    const [byEmail, r1] = await send("POST", "/api/v1/auth/login", {
      body: { email: "nobody.secret@example.com", password: "whatever it is" },
    });
    assert.equal(byEmail.status, 401);
    const [byName, r2] = await send("POST", "/api/v1/auth/login", {
      body: { username: "MyPassw0rdByMistake", password: "whatever it is" },
    });
    assert.equal(byName.status, 401);
    const response = await worker.request("GET", `${ADMIN}/audit?action=user.login_failed&per_page=100`, {
      token: admin.access_token,
    });
    const byRequest = Object.fromEntries(response.json.entries.map((entry) => [entry.request_id, entry]));
    assert.deepEqual(byRequest[r1].details, { reason: "unknown_account", identifier: "n***@example.com" });
    assert.deepEqual(byRequest[r2].details, { reason: "unknown_account", identifier: "M***" });
    assert.equal(byRequest[r1].target_id, null);
    assert.equal(byRequest[r1].actor_id, null);
  });

  test("entries never hold a password, a token or a full email address", async () => {
    const username = uniqueName("secret");
    const email = `${username}@hidden.example`;
    const account = await worker.signup({ username, email });
    await worker.request("POST", "/api/v1/auth/login", { body: { email, password: "wrong password here" } });
    await worker.request("POST", "/api/v1/auth/password/change", {
      token: account.access_token,
      body: { current_password: STRONG_PASSWORD, new_password: "a fresh secret phrase" },
    });
    const rows = await worker.db.query("SELECT * FROM audit_log");
    const dump = JSON.stringify(rows);
    for (const secret of [
      STRONG_PASSWORD,
      "wrong password here",
      "a fresh secret phrase",
      account.access_token,
      account.refresh_token,
      account.refresh_token.split(".")[1],
      email,
      "nobody.secret",
    ]) {
      assert.ok(!dump.includes(secret), `audit_log holds ${secret.slice(0, 12)}…`);
    }
  });

  test("a refresh token reused after its grace window is revoked and audited", async () => {
    const account = await worker.signup();
    const sid = decodeJwt(account.access_token).sid;
    const rotated = await worker.request("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: account.refresh_token },
    });
    assert.equal(rotated.status, 200);
    await sleep(1100);
    const [reused, requestId] = await send("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: account.refresh_token },
    });
    assert.equal(reused.status, 401);
    const entries = await entriesFor(account.user.id);
    const entry = entries.find((e) => e.action === "session.revoked");
    assert.ok(entry, JSON.stringify(entries));
    assert.deepEqual(entry.details, { session_id: sid, reason: "refresh_token_reuse" });
    assert.equal(entry.actor_id, null, "nobody in particular did it");
    assert.equal(entry.request_id, requestId);
    assert.equal(entry.ip, IP);
  });
});

describe("audit log listing", () => {
  let worker;
  let admin;
  const subject = randomUUID();
  const other = randomUUID();
  const T = 1_800_000_000;
  before(async () => {
    worker = await startWorker();
    admin = await worker.admin();
    const rows = [
      [T, "user.login", subject, subject],
      [T + 10, "user.banned", other, subject],
      [T + 20, "user.login", subject, subject],
      [T + 30, "user.unbanned", other, subject],
      [T + 40, "user.login", other, other],
      [T + 50, "user.login", subject, subject],
    ];
    await worker.db.batch(
      rows.map(([at, action, actor, target]) => [
        "INSERT INTO audit_log (occurred_at, action, actor_id, target_id) VALUES (?1, ?2, ?3, ?4)",
        at,
        action,
        actor,
        target,
      ]),
    );
  });
  after(() => worker.dispose());

  const list = (query) => worker.request("GET", `${ADMIN}/audit${query}`, { token: admin.access_token });
  const times = (response) =>
    response.json.entries.map((entry) => Date.parse(entry.occurred_at) / 1000 - T);

  test("user matches actor or target; action and time range narrow it; newest first", async () => {
    assert.deepEqual(times(await list(`?user=${subject}`)), [50, 30, 20, 10, 0]);
    assert.deepEqual(times(await list(`?user=${other}`)), [40, 30, 10]);
    assert.deepEqual(times(await list(`?user=${subject}&action=user.login`)), [50, 20, 0]);
    const since = new Date((T + 10) * 1000).toISOString();
    const window = await list(`?user=${subject}&since=${since}&until=${T + 30}`);
    assert.deepEqual(times(window), [20, 10], "since is inclusive, until exclusive");
    assert.equal(window.json.total, 2);
    const none = await list(`?user=${subject}&action=user.deleted`);
    assert.deepEqual(none.json.entries, []);
    assert.equal(none.json.total, 0);
  });

  test("pages hold per_page entries with the total in each", async () => {
    const pages = [];
    for (const page of [1, 2, 3, 4]) {
      const response = await list(`?user=${subject}&per_page=2&page=${page}`);
      assert.equal(response.status, 200);
      assert.equal(response.json.total, 5);
      assert.equal(response.json.total_pages, 3);
      pages.push(times(response));
    }
    assert.deepEqual(pages, [[50, 30], [20, 10], [0], []]);
    const entry = (await list(`?user=${subject}&per_page=1`)).json.entries[0];
    assert.deepEqual(Object.keys(entry).sort(), [
      "action",
      "actor_id",
      "colo",
      "details",
      "id",
      "ip",
      "occurred_at",
      "request_id",
      "target_id",
    ]);
    assert.deepEqual(entry.details, {});
  });

  test("bad filters are refused with a 422 naming each", async () => {
    const body = assertProblem(
      assert,
      await list("?user=bob&action=user.exploded&since=soon&until=later&per_page=1000&sort=asc"),
      422,
    );
    assert.deepEqual(body.errors.map((error) => error.field).sort(), [
      "action",
      "per_page",
      "since",
      "sort",
      "until",
      "user",
    ]);
    const range = assertProblem(assert, await list(`?since=${T + 5}&until=${T + 5}`), 422);
    assert.deepEqual(range.errors, [{ field: "until", message: "must be later than since" }]);
  });
});
