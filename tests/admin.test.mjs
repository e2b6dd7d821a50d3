// The admin API (`/api/v1/admin/*`): who may use it (401 without a token, 403 without the
// permission, a demoted admin refused at once), listing and search with pagination, account
// management with its self-protection rules, and bans that end login, refresh and every
// session.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { randomUUID } from "node:crypto";
import { startWorker, assertProblem, uniqueName, nowSeconds, sleep, STRONG_PASSWORD } from "./helpers.mjs";

const ADMIN = "/api/v1/admin";
const INVALID_CREDENTIALS = "Invalid username or password";
const WRONG_PASSWORD = "not the password at all";

function assertForbidden(response, detail) {
  const body = assertProblem(assert, response, 403);
  assert.equal(body.type, "urn:edge-auth:problem:forbidden");
  if (detail !== undefined) assert.equal(body.detail, detail);
  return body;
}

function assertConflict(response, code, detail) {
  const body = assertProblem(assert, response, 409);
  assert.equal(body.type, `urn:edge-auth:problem:${code}`);
  assert.equal(body.detail, detail);
  return body;
}

/** Every admin route with a body that would be accepted, aimed at `target`. */
function everyRoute(target, sessionId) {
  return [
    ["GET", `${ADMIN}/users`],
    ["GET", `${ADMIN}/users?q=a&page=1&per_page=5`],
    ["GET", `${ADMIN}/users/${target}`],
    ["PATCH", `${ADMIN}/users/${target}`, { email_verified: true }],
    ["PUT", `${ADMIN}/users/${target}`, { email_verified: true }],
    ["DELETE", `${ADMIN}/users/${target}`],
    ["POST", `${ADMIN}/users/${target}/roles`, { role: "admin" }],
    ["DELETE", `${ADMIN}/users/${target}/roles/user`],
    ["POST", `${ADMIN}/users/${target}/ban`, {}],
    ["PUT", `${ADMIN}/users/${target}/ban`, {}],
    ["DELETE", `${ADMIN}/users/${target}/ban`],
    ["GET", `${ADMIN}/users/${target}/sessions`],
    ["DELETE", `${ADMIN}/users/${target}/sessions`],
    ["DELETE", `${ADMIN}/users/${target}/sessions/${sessionId}`],
    ["GET", `${ADMIN}/roles`],
    ["GET", `${ADMIN}/audit`],
    ["GET", `${ADMIN}/audit?action=user.login`],
  ];
}

describe("admin guard", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("every admin route answers 401 without a token and 403 to a plain user, changing nothing", async () => {
    const user = await worker.signup();
    const target = await worker.signup();
    const targetSid = decodeJwt(target.access_token).sid;
    for (const [method, path, body] of everyRoute(target.user.id, targetSid)) {
      const anonymous = await worker.request(method, path, { body });
      const problem = assertProblem(assert, anonymous, 401);
      assert.equal(problem.detail, "Not authenticated", `${method} ${path}`);
      assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
      const refused = await worker.request(method, path, { body, token: user.access_token });
      assertForbidden(refused);
      assert.match(refused.json.detail, /^This needs the [a-z]+(:[a-z]+)? (permission|role)$/);
    }
    // Nothing above took effect.
    const row = await worker.userRow(target.user.id);
    assert.equal(row.banned_at, null);
    assert.equal(row.email_verified, false);
    assert.deepEqual(await worker.rolesOf(target.user.id), ["user"]);
    assert.equal((await worker.me(target.access_token)).status, 200);
    assert.deepEqual(await worker.rolesOf(user.user.id), ["user"]);
  });

  test("an admin passes every guard", async () => {
    const admin = await worker.admin();
    assert.deepEqual(decodeJwt(admin.access_token).roles, ["admin", "user"]);
    const target = await worker.signup();
    const targetSid = decodeJwt(target.access_token).sid;
    // Reads only: the writes each have their own tests.
    for (const [method, path] of everyRoute(target.user.id, targetSid).filter(([m]) => m === "GET")) {
      const response = await worker.request(method, path, { token: admin.access_token });
      assert.equal(response.status, 200, `${method} ${path}: ${response.text}`);
      assert.equal(response.headers.get("cache-control"), "no-store");
    }
  });

  test("a demoted admin's next request is refused even with the token that said admin", async () => {
    const admin = await worker.admin();
    const other = await worker.admin();
    const target = await worker.signup();
    const ok = await worker.request("PATCH", `${ADMIN}/users/${target.user.id}`, {
      token: admin.access_token,
      body: { email_verified: true },
    });
    assert.equal(ok.status, 200, ok.text);
    const demoted = await worker.request("DELETE", `${ADMIN}/users/${admin.user.id}/roles/admin`, {
      token: other.access_token,
    });
    assert.equal(demoted.status, 200, demoted.text);
    assert.deepEqual(demoted.json.roles, ["user"]);
    assert.deepEqual(decodeJwt(admin.access_token).roles, ["admin", "user"], "the old token still claims admin");
    const write = await worker.request("PATCH", `${ADMIN}/users/${target.user.id}`, {
      token: admin.access_token,
      body: { email_verified: false },
    });
    assertForbidden(write, "This needs the users:write permission");
    assert.equal((await worker.userRow(target.user.id)).email_verified, true, "the write did not happen");
    const read = await worker.request("GET", `${ADMIN}/users/${target.user.id}`, {
      token: admin.access_token,
    });
    assertForbidden(read, "This needs the users:read permission");
    await sleep(50);
    assert.ok(
      worker.logs.some(
        (line) => line.includes('"forbidden"') && line.includes("account_lacks_right") && line.includes(admin.user.id),
      ),
      "the refusal is logged as a security event",
    );
  });

  test("a role granted after the token was issued counts from the next refresh", async () => {
    const account = await worker.signup();
    await worker.grantRole(account.user.id, "admin");
    const before = await worker.request("GET", `${ADMIN}/users`, { token: account.access_token });
    assertForbidden(before, "This needs the users:read permission");
    const refreshed = await worker.refresh(account.refresh_token);
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.deepEqual(refreshed.json.user.roles, ["admin", "user"]);
    const after = await worker.request("GET", `${ADMIN}/users`, { token: refreshed.json.access_token });
    assert.equal(after.status, 200, after.text);
  });

  test("permissions are data: taking one from a role takes effect on the next request", async () => {
    const admin = await worker.admin();
    const target = await worker.signup();
    await worker.db.run("DELETE FROM role_permissions WHERE role = 'admin' AND permission = 'users:delete'");
    try {
      const refused = await worker.request("DELETE", `${ADMIN}/users/${target.user.id}`, {
        token: admin.access_token,
      });
      assertForbidden(refused, "This needs the users:delete permission");
      assert.notEqual(await worker.userRow(target.user.id), null);
      // Other permissions of the role still work.
      const read = await worker.request("GET", `${ADMIN}/users/${target.user.id}`, {
        token: admin.access_token,
      });
      assert.equal(read.status, 200);
    } finally {
      await worker.db.run("INSERT INTO role_permissions (role, permission) VALUES ('admin', 'users:delete')");
    }
    // A role other than admin can be given one permission and nothing more.
    await worker.db.run("INSERT INTO roles (name, description) VALUES ('support', 'Helps')");
    await worker.db.run("INSERT INTO role_permissions (role, permission) VALUES ('support', 'users:read')");
    const helper = await worker.signup();
    await worker.grantRole(helper.user.id, "support");
    const token = (await worker.login(helper.username)).access_token;
    assert.equal((await worker.request("GET", `${ADMIN}/users/${target.user.id}`, { token })).status, 200);
    assertForbidden(
      await worker.request("POST", `${ADMIN}/users/${target.user.id}/ban`, { token, body: {} }),
      "This needs the users:ban permission",
    );
    assertForbidden(await worker.request("GET", `${ADMIN}/roles`, { token }), "This needs the admin role");
  });

  test("the seeded roles and permissions are listed", async () => {
    const admin = await worker.admin();
    const response = await worker.request("GET", `${ADMIN}/roles`, { token: admin.access_token });
    assert.equal(response.status, 200, response.text);
    const byName = Object.fromEntries(response.json.roles.map((role) => [role.name, role]));
    assert.deepEqual(byName.admin.permissions, [
      "audit:read",
      "roles:assign",
      "sessions:read",
      "sessions:revoke",
      "users:ban",
      "users:delete",
      "users:read",
      "users:write",
    ]);
    assert.deepEqual(byName.user.permissions, []);
    assert.equal(typeof byName.user.description, "string");
  });

  test("unknown admin paths are 404 and wrong methods 405 with Allow", async () => {
    const admin = await worker.admin();
    for (const path of [`${ADMIN}`, `${ADMIN}/users/x/password`, `${ADMIN}/audit/1`]) {
      assertProblem(assert, await worker.request("GET", path, { token: admin.access_token }), 404);
    }
    const wrong = await worker.request("POST", `${ADMIN}/users`, { token: admin.access_token, body: {} });
    assertProblem(assert, wrong, 405);
    assert.equal(wrong.headers.get("allow"), "GET, OPTIONS");
  });
});

describe("admin user listing", () => {
  let worker;
  let admin;
  const prefix = `ls${process.pid}`.slice(0, 12);
  const names = [];
  before(async () => {
    worker = await startWorker();
    admin = await worker.admin();
    // Seven accounts straight into the database (no argon2 needed to list them), one second apart.
    const base = nowSeconds() - 1000;
    const statements = [];
    for (let i = 0; i < 7; i += 1) {
      const id = randomUUID();
      const username = `${prefix}_${i}`;
      names.push(username);
      statements.push(
        [
          "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, 'x', ?4, ?4)",
          id,
          username,
          `${prefix}.${i}@list.example`,
          base + i,
        ],
        ["INSERT INTO user_roles (user_id, role, granted_at) VALUES (?1, 'user', 0)", id],
      );
    }
    // Look-alikes a wildcard would catch.
    statements.push([
      "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) VALUES (?1, ?2, NULL, 'x', 0, 0)",
      randomUUID(),
      `${prefix}x0`,
    ]);
    await worker.db.batch(statements);
  });
  after(() => worker.dispose());

  const list = (query) =>
    worker.request("GET", `${ADMIN}/users${query}`, { token: admin.access_token });

  test("pages split the matches newest first, with the total in every page", async () => {
    const seen = [];
    for (const [page, expected] of [
      [1, 3],
      [2, 3],
      [3, 1],
      [4, 0],
    ]) {
      const response = await list(`?q=${prefix}_&per_page=3&page=${page}`);
      assert.equal(response.status, 200, response.text);
      assert.equal(response.json.users.length, expected, `page ${page}`);
      assert.equal(response.json.total, 7);
      assert.equal(response.json.total_pages, 3);
      assert.equal(response.json.page, page);
      assert.equal(response.json.per_page, 3);
      seen.push(...response.json.users.map((user) => user.username));
    }
    assert.deepEqual(seen, [...names].reverse(), "every match once, newest first");
    const first = (await list(`?q=${prefix}_&per_page=3`)).json.users[0];
    assert.deepEqual(Object.keys(first).sort(), [
      "ban_reason",
      "banned",
      "banned_at",
      "banned_until",
      "created_at",
      "email",
      "email_verified",
      "id",
      "roles",
      "updated_at",
      "username",
    ]);
    assert.equal(first.banned, false);
  });

  test("without a search every account is counted, 20 to a page by default", async () => {
    const response = await list("");
    assert.equal(response.status, 200);
    const total = await worker.count("SELECT COUNT(*) AS n FROM users");
    assert.equal(response.json.total, total);
    assert.equal(response.json.per_page, 20);
    assert.equal(response.json.users.length, Math.min(total, 20));
    const full = await list("?per_page=100");
    assert.equal(full.status, 200);
    assert.equal(full.json.users.length, Math.min(total, 100));
  });

  test("page and per_page outside their bounds are refused with 422", async () => {
    for (const [query, field] of [
      ["?per_page=101", "per_page"],
      ["?per_page=0", "per_page"],
      ["?per_page=-1", "per_page"],
      ["?page=0", "page"],
      ["?page=two", "page"],
      ["?page=1.5", "page"],
      ["?q=" + "a".repeat(255), "q"],
    ]) {
      const body = assertProblem(assert, await list(query), 422);
      assert.deepEqual(
        body.errors.map((error) => error.field),
        [field],
        query,
      );
    }
  });

  test("unknown and repeated parameters are refused rather than ignored", async () => {
    const body = assertProblem(assert, await list("?username=x&page=1&page=2"), 422);
    assert.deepEqual(body.errors, [
      { field: "username", message: "is not a parameter of this request" },
      { field: "page", message: "is given more than once" },
    ]);
  });

  test("search matches a username or email prefix, case-insensitively, without wildcards", async () => {
    const byUsername = await list(`?q=${prefix.toUpperCase()}_3`);
    assert.deepEqual(
      byUsername.json.users.map((user) => user.username),
      [`${prefix}_3`],
    );
    const byEmail = await list(`?q=${encodeURIComponent(`${prefix}.5@LIST`)}`);
    assert.deepEqual(
      byEmail.json.users.map((user) => user.username),
      [`${prefix}_5`],
    );
    // `_` is a character, not a wildcard: `x0` must not match.
    const underscore = await list(`?q=${prefix}_`);
    assert.ok(!underscore.json.users.some((user) => user.username === `${prefix}x0`));
    const percent = await list(`?q=${prefix}%25`);
    assert.equal(percent.json.total, 0);
    const none = await list("?q=zzzz_nobody");
    assert.equal(none.status, 200);
    assert.deepEqual(none.json.users, []);
    assert.equal(none.json.total, 0);
    assert.equal(none.json.total_pages, 0);
  });
});

describe("admin user management", () => {
  let worker;
  let admin;
  before(async () => {
    worker = await startWorker();
    admin = await worker.admin();
  });
  after(() => worker.dispose());

  const call = (method, path, body, token = admin.access_token) =>
    worker.request(method, `${ADMIN}${path}`, { body, token });

  test("one account by id; unknown and malformed ids are 404", async () => {
    const target = await worker.signup({ email: `${uniqueName("g")}@example.com` });
    const response = await call("GET", `/users/${target.user.id}`);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.id, target.user.id);
    assert.equal(response.json.email, target.user.email);
    assert.deepEqual(response.json.roles, ["user"]);
    assert.equal(response.json.banned, false);
    assert.ok(!("password_hash" in response.json));
    for (const id of [randomUUID(), "not-a-uuid", target.user.id.toUpperCase()]) {
      const missing = assertProblem(assert, await call("GET", `/users/${id}`), 404);
      assert.equal(missing.detail, "Not found");
    }
  });

  test("update username, email and verification; a new email is unverified unless stated", async () => {
    const target = await worker.signup({ email: `${uniqueName("u")}@example.com` });
    const newName = uniqueName("renamed");
    const renamed = await call("PATCH", `/users/${target.user.id}`, {
      username: newName.toUpperCase(),
      email_verified: true,
    });
    assert.equal(renamed.status, 200, renamed.text);
    assert.equal(renamed.json.username, newName);
    assert.equal(renamed.json.email_verified, true);
    const moved = await call("PATCH", `/users/${target.user.id}`, { email: `${newName}@example.org` });
    assert.equal(moved.json.email, `${newName}@example.org`);
    assert.equal(moved.json.email_verified, false, "a changed email is unverified");
    const vouched = await call("PUT", `/users/${target.user.id}`, {
      email: `${newName}@example.net`,
      email_verified: true,
    });
    assert.equal(vouched.json.email_verified, true, "unless the admin says it is verified");
    const removed = await call("PATCH", `/users/${target.user.id}`, { email: null });
    assert.equal(removed.json.email, null);
    const row = await worker.userRow(target.user.id);
    assert.equal(row.username, newName);
    assert.equal(row.email, null);
    // The account logs in under its new name.
    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: newName, password: STRONG_PASSWORD },
    });
    assert.equal(login.status, 200);
  });

  test("updates that clash or make no sense are refused and change nothing", async () => {
    const target = await worker.signup();
    const other = await worker.signup();
    assertConflict(
      await call("PATCH", `/users/${target.user.id}`, { username: other.username }),
      "username_taken",
      "Username is already taken",
    );
    const invalid = assertProblem(
      assert,
      await call("PATCH", `/users/${target.user.id}`, {
        username: "a b",
        email: "nope",
        email_verified: "yes",
        roles: ["admin"],
      }),
      422,
    );
    assert.deepEqual(invalid.errors.map((error) => error.field).sort(), [
      "email",
      "email_verified",
      "roles",
      "username",
    ]);
    assert.equal((await worker.userRow(target.user.id)).username, target.username);
    assert.deepEqual(await worker.rolesOf(target.user.id), ["user"]);
    assertProblem(assert, await call("PATCH", `/users/${randomUUID()}`, { email_verified: true }), 404);
  });

  test("roles are granted and removed; unknown roles and roles not held are refused", async () => {
    const target = await worker.signup();
    const granted = await call("POST", `/users/${target.user.id}/roles`, { role: "admin" });
    assert.equal(granted.status, 201, granted.text);
    assert.deepEqual(granted.json.roles, ["admin", "user"]);
    const again = await call("POST", `/users/${target.user.id}/roles`, { role: "admin" });
    assert.equal(again.status, 200, "granting a held role is idempotent");
    assert.deepEqual(await worker.rolesOf(target.user.id), ["admin", "user"]);
    const unknown = assertProblem(
      assert,
      await call("POST", `/users/${target.user.id}/roles`, { role: "superuser" }),
      422,
    );
    assert.deepEqual(unknown.errors, [{ field: "role", message: "is not a role" }]);
    assertProblem(assert, await call("POST", `/users/${target.user.id}/roles`, {}), 422);
    const removed = await call("DELETE", `/users/${target.user.id}/roles/admin`);
    assert.equal(removed.status, 200, removed.text);
    assert.deepEqual(removed.json.roles, ["user"]);
    assertProblem(assert, await call("DELETE", `/users/${target.user.id}/roles/admin`), 404);
    assertProblem(assert, await call("DELETE", `/users/${target.user.id}/roles/nonsense`), 404);
    assert.deepEqual(await worker.rolesOf(target.user.id), ["user"]);
  });

  test("an admin cannot delete or ban themselves or drop their own admin role (409)", async () => {
    const self = admin.user.id;
    assertConflict(
      await call("DELETE", `/users/${self}`),
      "self_action_refused",
      "You cannot delete your own account here; use DELETE /api/v1/users/me",
    );
    assertConflict(await call("POST", `/users/${self}/ban`, {}), "self_action_refused", "You cannot ban yourself");
    assertConflict(
      await call("DELETE", `/users/${self}/roles/admin`),
      "self_action_refused",
      "You cannot remove your own admin role; another admin must do it",
    );
    assert.notEqual(await worker.userRow(self), null);
    assert.equal((await worker.userRow(self)).banned_at, null);
    assert.deepEqual(await worker.rolesOf(self), ["admin", "user"]);
    assert.equal((await worker.me(admin.access_token)).status, 200);
    // Revoking their own other roles is fine.
    const removed = await call("DELETE", `/users/${self}/roles/user`);
    assert.equal(removed.status, 200);
    await worker.grantRole(self, "user");
  });

  test("the last admin keeps the admin role, whoever asks", async () => {
    // A fresh database where a non-admin role may assign roles.
    const isolated = await startWorker();
    try {
      const sole = await isolated.admin();
      await isolated.db.run("INSERT INTO roles (name, description) VALUES ('steward', 'x')");
      await isolated.db.run("INSERT INTO role_permissions (role, permission) VALUES ('steward', 'roles:assign')");
      const steward = await isolated.signup();
      await isolated.grantRole(steward.user.id, "steward");
      const token = (await isolated.login(steward.username)).access_token;
      const refused = await isolated.request("DELETE", `${ADMIN}/users/${sole.user.id}/roles/admin`, {
        token,
      });
      const body = assertProblem(assert, refused, 409);
      assert.equal(body.type, "urn:edge-auth:problem:last_admin");
      assert.deepEqual(await isolated.rolesOf(sole.user.id), ["admin", "user"]);
      assert.equal(
        await isolated.count("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'user.role_revoked'"),
        0,
        "a refused removal is not audited",
      );
    } finally {
      await isolated.dispose();
    }
  });

  test("delete removes the account with its roles and sessions; its tokens die", async () => {
    const target = await worker.signup();
    const second = await worker.login(target.username);
    const response = await call("DELETE", `/users/${target.user.id}`);
    assert.equal(response.status, 204, response.text);
    assert.equal(await worker.userRow(target.user.id), null);
    assert.deepEqual(await worker.rolesOf(target.user.id), []);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", target.user.id), 0);
    for (const session of [target, second]) {
      assertProblem(assert, await worker.me(session.access_token), 401);
      assertProblem(assert, await worker.refresh(session.refresh_token), 401);
    }
    assertProblem(assert, await call("DELETE", `/users/${target.user.id}`), 404);
  });

  test("a user's sessions are listed and revoked one at a time or all at once", async () => {
    const target = await worker.signup();
    const phone = await worker.login(target.username, { "user-agent": "Phone/1" });
    const laptop = await worker.login(target.username, { "user-agent": "Laptop/1" });
    const listed = await call("GET", `/users/${target.user.id}/sessions`);
    assert.equal(listed.status, 200, listed.text);
    const ids = listed.json.sessions.map((session) => session.id).sort();
    assert.deepEqual(
      ids,
      [target, phone, laptop].map((session) => decodeJwt(session.access_token).sid).sort(),
    );
    assert.ok(listed.json.sessions.some((session) => session.user_agent === "Phone/1"));
    const phoneSid = decodeJwt(phone.access_token).sid;
    const one = await call("DELETE", `/users/${target.user.id}/sessions/${phoneSid}`);
    assert.equal(one.status, 204, one.text);
    assertProblem(assert, await worker.me(phone.access_token), 401);
    assertProblem(assert, await worker.refresh(phone.refresh_token), 401);
    assert.equal((await worker.me(laptop.access_token)).status, 200, "the others live on");
    // Revoked already, someone else's, unknown, malformed: 404.
    const adminSid = decodeJwt(admin.access_token).sid;
    for (const sid of [phoneSid, adminSid, randomUUID(), "nope"]) {
      assertProblem(assert, await call("DELETE", `/users/${target.user.id}/sessions/${sid}`), 404);
    }
    assert.equal((await worker.me(admin.access_token)).status, 200);
    const all = await call("DELETE", `/users/${target.user.id}/sessions`);
    assert.equal(all.status, 200, all.text);
    assert.equal(all.json.sessions_revoked, 2);
    for (const session of [target, laptop]) {
      assertProblem(assert, await worker.me(session.access_token), 401);
      assertProblem(assert, await worker.refresh(session.refresh_token), 401);
    }
    assert.deepEqual((await call("GET", `/users/${target.user.id}/sessions`)).json.sessions, []);
    assert.equal((await worker.login(target.username)).token_type, "bearer", "the account itself is fine");
  });
});

describe("bans", () => {
  let worker;
  let admin;
  before(async () => {
    worker = await startWorker();
    admin = await worker.admin();
  });
  after(() => worker.dispose());

  const ban = (id, body = {}) =>
    worker.request("POST", `${ADMIN}/users/${id}/ban`, { body, token: admin.access_token });

  test("a ban ends every session at once and stops login and refresh", async () => {
    const target = await worker.signup();
    const other = await worker.login(target.username);
    const response = await ban(target.user.id, { reason: "  spam  " });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.banned, true);
    assert.equal(response.json.banned_until, null, "no until: indefinite");
    assert.equal(response.json.ban_reason, "spam");
    assert.match(response.json.banned_at, /^\d{4}-\d\d-\d\dT/);
    assert.equal(response.json.sessions_revoked, 2);
    for (const session of [target, other]) {
      const denied = assertProblem(assert, await worker.me(session.access_token), 401);
      assert.equal(denied.detail, "Session is no longer valid");
      assertProblem(assert, await worker.refresh(session.refresh_token), 401);
    }
    const refused = assertForbidden(await worker.attemptLogin(target.username), "Account is suspended");
    assert.equal(refused.type, "urn:edge-auth:problem:forbidden");
    const rows = await worker.db.query("SELECT revoked_reason FROM sessions WHERE user_id = ?1", target.user.id);
    assert.deepEqual(
      rows.map((row) => row.revoked_reason),
      ["banned", "banned"],
    );
  });

  test("a banned account with a wrong password gets the generic 401: a ban reveals nothing", async () => {
    const target = await worker.signup();
    assert.equal((await ban(target.user.id)).status, 200);
    const wrong = assertProblem(assert, await worker.attemptLogin(target.username, WRONG_PASSWORD), 401);
    assert.equal(wrong.detail, INVALID_CREDENTIALS);
    const unknown = assertProblem(assert, await worker.attemptLogin(uniqueName("ghost"), WRONG_PASSWORD), 401);
    assert.equal(unknown.detail, INVALID_CREDENTIALS);
  });

  test("a timed ban names its end, ends by itself, and must end in the future", async () => {
    const target = await worker.signup();
    const until = new Date((nowSeconds() + 3600) * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const response = await ban(target.user.id, { until });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.banned_until, until);
    assertForbidden(await worker.attemptLogin(target.username), `Account is suspended until ${until}`);
    for (const bad of [
      { until: "2001-01-01T00:00:00Z" },
      { until: "tomorrow" },
      { until: 12 },
      { reason: "x".repeat(501) },
      { forever: true },
    ]) {
      assertProblem(assert, await ban(target.user.id, bad), 422);
    }
    assert.equal((await worker.userRow(target.user.id)).banned_until, Date.parse(until) / 1000, "unchanged");
    // Time passes: the ban's end is now behind us.
    await worker.db.run("UPDATE users SET banned_until = ?2 WHERE id = ?1", target.user.id, nowSeconds() - 1);
    const after = await worker.attemptLogin(target.username);
    assert.equal(after.status, 200, after.text);
    assert.equal((await worker.me(after.json.access_token)).status, 200);
    const view = await worker.request("GET", `${ADMIN}/users/${target.user.id}`, { token: admin.access_token });
    assert.equal(view.json.banned, false);
    assert.equal(view.json.banned_until, null);
  });

  test("unban lets the account log in again; sessions the ban ended stay ended", async () => {
    const target = await worker.signup();
    await ban(target.user.id);
    const lifted = await worker.request("DELETE", `${ADMIN}/users/${target.user.id}/ban`, {
      token: admin.access_token,
    });
    assert.equal(lifted.status, 200, lifted.text);
    assert.equal(lifted.json.banned, false);
    const row = await worker.userRow(target.user.id);
    assert.deepEqual([row.banned_at, row.banned_until, row.ban_reason], [null, null, null]);
    assertProblem(assert, await worker.refresh(target.refresh_token), 401);
    assert.equal((await worker.attemptLogin(target.username)).status, 200);
    const again = await worker.request("DELETE", `${ADMIN}/users/${target.user.id}/ban`, {
      token: admin.access_token,
    });
    assert.equal(again.status, 200, "unbanning an account that is not banned is harmless");
  });

  test("a ban written straight into the database is enforced on tokens and refresh too", async () => {
    const target = await worker.signup();
    await worker.db.run("UPDATE users SET banned_at = ?2 WHERE id = ?1", target.user.id, nowSeconds());
    assertProblem(assert, await worker.me(target.access_token), 401);
    assertProblem(assert, await worker.refresh(target.refresh_token), 401);
    assertForbidden(await worker.attemptLogin(target.username), "Account is suspended");
  });

  test("a banned admin loses the admin API with everything else", async () => {
    const other = await worker.admin();
    assert.equal((await ban(other.user.id)).status, 200);
    const refused = await worker.request("GET", `${ADMIN}/users`, { token: other.access_token });
    assertProblem(assert, refused, 401);
  });
});
