// The authentication API (`/api/v1/auth/*`): signup, login, refresh-token rotation and
// password change, against the built Worker with a real database (D1 or PostgreSQL, see
// tests/helpers.mjs) and the rate-limiter Durable Object. Tokens are checked with an
// independent JOSE library (`jose`) and the stored rows are read straight from the database,
// so a test fails if the Worker's answer and its database disagree.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLocalJWKSet, jwtVerify, decodeProtectedHeader, decodeJwt } from "jose";
import {
  startWorker,
  assertProblem,
  assertUnauthorized,
  assertFieldErrors,
  assertEdgeHeaders,
  uniqueName,
  nowSeconds,
  sleep,
  withoutRequestId,
  STRONG_PASSWORD,
  ISSUER,
  AUDIENCE,
} from "./helpers.mjs";

const SIGNUP = "/api/v1/auth/signup";
const LOGIN = "/api/v1/auth/login";
const REFRESH = "/api/v1/auth/refresh";
const CHANGE = "/api/v1/auth/password/change";

const INVALID_CREDENTIALS = "Invalid username or password";
const INVALID_REFRESH = "Invalid or expired refresh token";
const SESSION_GONE = "Session is no longer valid";
const LENGTH_MESSAGE = "must be 8 to 128 characters long";
const USERNAME_LENGTH = "must be 3 to 42 characters long";
const USERNAME_CHARS = "may contain only letters, digits and underscores";
const BAD_EMAIL = "is not a valid email address";
const TOO_COMMON = "is too common; choose a less predictable password";
const SAME_AS_NAME = "must not be the same as your username or email";
const BODY_LIMIT = "Request body exceeds the limit of 65536 bytes";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const RFC3339_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
// A refresh token names its session: `<session uuid>.<43 base64url characters>`.
const OPAQUE_TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const TOKEN_KEYS = ["access_token", "expires_in", "refresh_token", "token_type", "user"];
const USER_KEYS = ["created_at", "email", "email_verified", "id", "roles", "updated_at", "username"];
const EMOJI_PASSWORD = "🔐🔑🗝🔒🔓🛡🧱🚪"; // 8 characters, 32 bytes

/** The storage form of a refresh token: hex SHA-256, computed independently of the Worker. */
const digest = (token) => createHash("sha256").update(token).digest("hex");

const post = (worker, path, body, extra = {}) => worker.request("POST", path, { body, ...extra });

const userCount = (worker) => worker.count("SELECT COUNT(*) AS n FROM users");

/** Every table the auth routes write, counted. */
async function tableCounts(worker) {
  const counts = {};
  for (const table of ["users", "user_roles", "sessions", "refresh_tokens"]) {
    counts[table] = await worker.count(`SELECT COUNT(*) AS n FROM ${table}`);
  }
  return counts;
}

/** Assert a full token response (signup, login, refresh) and return its body. */
function assertTokenResponse(response, status) {
  assert.equal(response.status, status, response.text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assertEdgeHeaders(assert, response);
  const body = response.json;
  assert.deepEqual(Object.keys(body).sort(), TOKEN_KEYS);
  assert.match(body.access_token, JWT_SHAPE);
  assert.match(body.refresh_token, OPAQUE_TOKEN);
  assert.equal(body.token_type, "bearer");
  assert.equal(body.expires_in, 900);
  const user = body.user;
  assert.deepEqual(Object.keys(user).sort(), USER_KEYS);
  assert.match(user.id, UUID_V4);
  assert.equal(user.email_verified, false);
  assert.deepEqual(user.roles, ["user"]);
  assert.match(user.created_at, RFC3339_SECONDS);
  assert.match(user.updated_at, RFC3339_SECONDS);
  assert.ok(!response.text.includes("password_hash"), "no password_hash member");
  assert.ok(!response.text.includes("$argon2"), "no password hash value");
  return body;
}

/** Verify an access token with jose against the Worker's published JWKS; returns payload and header. */
async function verifyWithJose(worker, token) {
  const jwks = await worker.request("GET", "/.well-known/jwks.json");
  assert.equal(jwks.status, 200, jwks.text);
  const keySet = createLocalJWKSet(jwks.json);
  const { payload, protectedHeader } = await jwtVerify(token, keySet, {
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ["EdDSA"],
  });
  // The same token must not verify for another audience: the check above has teeth.
  await assert.rejects(
    jwtVerify(token, keySet, { issuer: ISSUER, audience: "someone-else", algorithms: ["EdDSA"] }),
  );
  return { payload, protectedHeader, kids: jwks.json.keys.map((key) => key.kid) };
}

// ---------------------------------------------------------------------------------------------

describe("POST /api/v1/auth/signup", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("201 token response with a lower-cased user, no password hash, not cacheable, and a matching row", async () => {
    const name = uniqueName("Mixed_Case");
    const emailLocal = uniqueName("Mail.Box");
    const before = await tableCounts(worker);
    const response = await post(worker, SIGNUP, {
      username: name,
      email: `${emailLocal}@Example.COM`,
      password: STRONG_PASSWORD,
    });
    const body = assertTokenResponse(response, 201);
    assert.equal(body.user.username, name.toLowerCase());
    assert.notEqual(body.user.username, name, "the test name really has upper case");
    assert.equal(body.user.email, `${emailLocal.toLowerCase()}@example.com`);
    assert.equal(body.user.created_at, body.user.updated_at);
    assert.ok(Math.abs(Date.parse(body.user.created_at) / 1000 - nowSeconds()) <= 5);

    const row = await worker.userRow(body.user.id);
    assert.equal(row.username, name.toLowerCase());
    assert.equal(row.email, `${emailLocal.toLowerCase()}@example.com`);
    assert.equal(row.email_verified, false);
    assert.match(row.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.ok(!row.password_hash.includes(STRONG_PASSWORD));
    assert.equal(body.user.created_at, new Date(row.created_at * 1000).toISOString().replace(".000", ""));

    // One row in each table, and the refresh token is stored only as its digest.
    const afterCounts = await tableCounts(worker);
    for (const table of Object.keys(before)) {
      assert.equal(afterCounts[table], before[table] + 1, table);
    }
    const stored = await worker.db.first(
      "SELECT rt.*, s.user_id FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id WHERE rt.token_hash = ?1",
      digest(body.refresh_token),
    );
    assert.ok(stored, "the refresh token's digest is stored");
    assert.equal(stored.user_id, body.user.id);
    assert.equal(stored.used_at, null);
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE token_hash = ?1", body.refresh_token),
      0,
      "the plain refresh token is never stored",
    );
  });

  test("the access tokens from signup and login verify with jose against the published JWKS", async () => {
    const account = await worker.signup();
    const loggedIn = assertTokenResponse(
      await worker.attemptLogin(account.username, account.password),
      200,
    );
    const sids = [];
    for (const issued of [account, loggedIn]) {
      const { payload, protectedHeader, kids } = await verifyWithJose(worker, issued.access_token);
      assert.equal(protectedHeader.alg, "EdDSA");
      assert.ok(kids.includes(protectedHeader.kid), `kid ${protectedHeader.kid} is in the JWKS`);
      assert.equal(decodeProtectedHeader(issued.access_token).kid, protectedHeader.kid);
      assert.equal(payload.iss, ISSUER);
      assert.equal(payload.aud, AUDIENCE);
      assert.equal(payload.sub, account.user.id);
      assert.match(payload.sid, UUID_V4);
      assert.match(payload.jti, UUID_V4);
      assert.deepEqual(payload.roles, ["user"]);
      assert.equal(payload.exp - payload.iat, 900);
      assert.ok(Math.abs(payload.iat - nowSeconds()) <= 5, "issued now");
      const session = await worker.sessionRow(payload.sid);
      assert.equal(session?.user_id, account.user.id, "sid names a stored session of the user");
      sids.push(payload.sid);
    }
    assert.notEqual(sids[0], sids[1], "login starts a new session");
    assert.equal(loggedIn.user.id, account.user.id);
  });

  test("boundary values are accepted: a 42-character username and a 128-character password", async () => {
    const username = `b_${process.pid}_${Date.now()}_`.padEnd(42, "x");
    assert.equal(username.length, 42);
    const password = "Tr0ub4dor&3 ".repeat(11).slice(0, 128);
    assert.equal(password.length, 128);
    const body = assertTokenResponse(await post(worker, SIGNUP, { username, password }), 201);
    assert.equal(body.user.username, username);
    assert.equal(body.user.email, null);
  });

  const invalid = [
    ["a 2-character username", { username: "ab" }, [{ field: "username", message: USERNAME_LENGTH }]],
    ["a 43-character username", { username: "a".repeat(43) }, [{ field: "username", message: USERNAME_LENGTH }]],
    ["a username with a hyphen", { username: "al-ice_x" }, [{ field: "username", message: USERNAME_CHARS }]],
    ["a username with a space", { username: "al ice_x" }, [{ field: "username", message: USERNAME_CHARS }]],
    ["a username with a dot", { username: "al.ice_x" }, [{ field: "username", message: USERNAME_CHARS }]],
    ["an email without a dotted domain", { email: "alice@example" }, [{ field: "email", message: BAD_EMAIL }]],
    ["an email without @", { email: "alice.example.com" }, [{ field: "email", message: BAD_EMAIL }]],
    ["an email in angle brackets", { email: "<alice@example.com>" }, [{ field: "email", message: BAD_EMAIL }]],
    ["a 7-character password", { password: "kT9#mvq" }, [{ field: "password", message: LENGTH_MESSAGE }]],
    ["a 129-character password", { password: "x".repeat(129) }, [{ field: "password", message: LENGTH_MESSAGE }]],
    ['the common password "password123"', { password: "password123" }, [{ field: "password", message: TOO_COMMON }]],
    ['"PASSWORD123" (common, other case)', { password: "PASSWORD123" }, [{ field: "password", message: TOO_COMMON }]],
    ["7 emoji as password (length counts characters, not bytes)", { password: "🔐🔑🗝🔒🔓🛡🧱" }, [{ field: "password", message: LENGTH_MESSAGE }]],
  ];
  for (const [label, overrides, errors] of invalid) {
    test(`${label} is a 422 naming that field and writes nothing`, async () => {
      const body = { username: uniqueName(), password: STRONG_PASSWORD, ...overrides };
      const before = await tableCounts(worker);
      assertFieldErrors(assert, await post(worker, SIGNUP, body), errors);
      assert.deepEqual(await tableCounts(worker), before);
    });
  }

  test("a password equal to the username (in another case) is a 422 naming password", async () => {
    const username = uniqueName("Quiet_Otter");
    const before = await userCount(worker);
    assertFieldErrors(
      assert,
      await post(worker, SIGNUP, { username, password: username.toUpperCase() }),
      [{ field: "password", message: SAME_AS_NAME }],
    );
    assert.equal(await userCount(worker), before);
  });

  test("a password equal to the email's local part is a 422 naming password", async () => {
    const local = uniqueName("wonder");
    assertFieldErrors(
      assert,
      await post(worker, SIGNUP, { username: uniqueName(), email: `${local}@example.com`, password: local }),
      [{ field: "password", message: SAME_AS_NAME }],
    );
  });

  test("missing username and password are both reported as required", async () => {
    const before = await userCount(worker);
    assertFieldErrors(assert, await post(worker, SIGNUP, {}), [
      { field: "username", message: "is required" },
      { field: "password", message: "is required" },
    ]);
    assertFieldErrors(assert, await post(worker, SIGNUP, { username: null, password: null, email: null }), [
      { field: "username", message: "is required" },
      { field: "password", message: "is required" },
    ]);
    assert.equal(await userCount(worker), before);
  });

  test("wrong JSON types are a 422 'must be a string' for each field, all together", async () => {
    const before = await userCount(worker);
    assertFieldErrors(assert, await post(worker, SIGNUP, { username: 5, password: STRONG_PASSWORD }), [
      { field: "username", message: "must be a string" },
    ]);
    assertFieldErrors(assert, await post(worker, SIGNUP, { username: ["bob"], email: 7, password: true }), [
      { field: "username", message: "must be a string" },
      { field: "email", message: "must be a string" },
      { field: "password", message: "must be a string" },
    ]);
    assert.equal(await userCount(worker), before);
  });

  test("several invalid fields are reported together in one 422", async () => {
    const before = await userCount(worker);
    assertFieldErrors(
      assert,
      await post(worker, SIGNUP, { username: uniqueName(), email: "not-an-email", password: "short" }),
      [
        { field: "email", message: BAD_EMAIL },
        { field: "password", message: LENGTH_MESSAGE },
      ],
    );
    assertFieldErrors(assert, await post(worker, SIGNUP, { username: "ab", email: "nope@x", password: STRONG_PASSWORD }), [
      { field: "username", message: USERNAME_LENGTH },
      { field: "email", message: BAD_EMAIL },
    ]);
    assert.equal(await userCount(worker), before);
  });

  // --- bodies that are not a JSON object ------------------------------------------------------

  /** Send a raw signup body for a unique username; assert the problem and that no row exists. */
  async function rejectsRawBody(init, status, username) {
    const before = await tableCounts(worker);
    const response = await worker.send(SIGNUP, { method: "POST", ...init });
    const body = assertProblem(assert, response, status);
    assertEdgeHeaders(assert, response);
    assert.deepEqual(await tableCounts(worker), before, "nothing written");
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM users WHERE username = ?1", username), 0);
    return body;
  }

  test("malformed JSON is a 400 malformed_request problem and writes nothing", async () => {
    const username = uniqueName();
    const body = await rejectsRawBody(
      {
        headers: { "content-type": "application/json" },
        body: `{"username": "${username}", "password": "${STRONG_PASSWORD}",`,
      },
      400,
      username,
    );
    assert.equal(body.type, "urn:edge-auth:problem:malformed_request");
    assert.match(body.detail, /^Request body is not valid JSON \(line \d+, column \d+\)$/);
  });

  test("an empty JSON body is a 400 'Request body is empty'", async () => {
    const response = await worker.send(SIGNUP, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "  ",
    });
    const body = assertProblem(assert, response, 400);
    assert.equal(body.detail, "Request body is empty");
  });

  test("a JSON body sent as text/plain is a 415 and writes nothing", async () => {
    const username = uniqueName();
    const body = await rejectsRawBody(
      {
        headers: { "content-type": "text/plain" },
        body: JSON.stringify({ username, password: STRONG_PASSWORD }),
      },
      415,
      username,
    );
    assert.equal(body.type, "urn:edge-auth:problem:unsupported_media_type");
    assert.equal(body.detail, "Content-Type must be application/json");
  });

  test("a JSON body without any Content-Type is a 415 and writes nothing", async () => {
    const username = uniqueName();
    const bytes = new TextEncoder().encode(JSON.stringify({ username, password: STRONG_PASSWORD }));
    const body = await rejectsRawBody({ body: bytes }, 415, username);
    assert.equal(body.detail, "Content-Type must be application/json");
  });

  test("a body over 64 KiB with a Content-Length is a 413 and writes nothing", async () => {
    const username = uniqueName();
    const json = JSON.stringify({ username, password: STRONG_PASSWORD, email: `${"a".repeat(70_000)}@example.com` });
    assert.ok(json.length > 65_536);
    const body = await rejectsRawBody(
      { headers: { "content-type": "application/json", "content-length": String(json.length) }, body: json },
      413,
      username,
    );
    assert.equal(body.type, "urn:edge-auth:problem:payload_too_large");
    assert.equal(body.detail, BODY_LIMIT);
  });

  test("a big JSON body streamed without a Content-Length is a 413 and writes nothing", async () => {
    const username = uniqueName();
    const head = `{"username": "${username}", "password": "${STRONG_PASSWORD}", "pad": "`;
    const chunk = "p".repeat(8_192);
    const streamed = () => {
      let sent = 0;
      return new ReadableStream({
        pull(controller) {
          const encoder = new TextEncoder();
          if (sent === 0) controller.enqueue(encoder.encode(head));
          if (sent < 10) {
            controller.enqueue(encoder.encode(chunk));
            sent += 1;
          } else {
            controller.enqueue(encoder.encode('"}'));
            controller.close();
          }
        },
      });
    };
    // A chunk still in flight when the Worker answers 413 and closes can draw a TCP reset
    // that drops the answer unread: the client losing a race, so that attempt is retried.
    for (let attempt = 1; ; attempt += 1) {
      try {
        const body = await rejectsRawBody(
          { headers: { "content-type": "application/json" }, body: streamed(), duplex: "half" },
          413,
          username,
        );
        assert.equal(body.detail, BODY_LIMIT);
        return;
      } catch (error) {
        if (error.cause?.code !== "ECONNRESET" || attempt === 5) throw error;
      }
    }
  });

  test("the body limit is exact: 65536 bytes are read (422 on content), 65537 are a 413", async () => {
    const base = JSON.stringify({ username: "ab", password: STRONG_PASSWORD, pad: "" });
    const sized = (bytes) =>
      JSON.stringify({ username: "ab", password: STRONG_PASSWORD, pad: "x".repeat(bytes - base.length) });
    assert.equal(Buffer.byteLength(sized(65_536)), 65_536);
    assertFieldErrors(assert, await post(worker, SIGNUP, sized(65_536)), [{ field: "username", message: USERNAME_LENGTH }]);
    const over = await post(worker, SIGNUP, sized(65_537));
    assert.equal(assertProblem(assert, over, 413).detail, BODY_LIMIT);
  });

  test("roles, email_verified and id sent at signup are ignored: a plain unverified user with a server id", async () => {
    const response = await post(worker, SIGNUP, {
      username: uniqueName("climber"),
      email: `${uniqueName("climber")}@example.com`,
      password: STRONG_PASSWORD,
      roles: ["admin"],
      email_verified: true,
      id: "00000000-0000-4000-8000-000000000000",
    });
    const body = assertTokenResponse(response, 201);
    assert.notEqual(body.user.id, "00000000-0000-4000-8000-000000000000");
    assert.deepEqual(decodeJwt(body.access_token).roles, ["user"]);
    assert.deepEqual(await worker.rolesOf(body.user.id), ["user"]);
    assert.equal((await worker.userRow(body.user.id)).email_verified, false);
  });

  test("a JSON array body is a 422 naming body and writes nothing", async () => {
    const username = uniqueName();
    const body = await rejectsRawBody(
      {
        headers: { "content-type": "application/json" },
        body: JSON.stringify([{ username, password: STRONG_PASSWORD }]),
      },
      422,
      username,
    );
    assert.deepEqual(body.errors, [{ field: "body", message: "must be a JSON object" }]);
  });

  // --- Unicode --------------------------------------------------------------------------------

  for (const [label, prefix] of [
    ['"ålice"', "ålice"],
    ["fullwidth letters", "ａｌｉｃｅ"],
    ["the Kelvin sign (lower-cases to an ASCII k)", "\u212Aelvin"],
    ["an embedded NUL", "al\u0000ice"],
  ]) {
    test(`a username with ${label} is a 422 and writes nothing`, async () => {
      const username = `${prefix}_${process.pid}`;
      const before = await userCount(worker);
      assertFieldErrors(assert, await post(worker, SIGNUP, { username, password: STRONG_PASSWORD }), [
        { field: "username", message: USERNAME_CHARS },
      ]);
      assert.equal(await userCount(worker), before);
      // PostgreSQL text cannot hold NUL, so no row there can be that name (and the lookup
      // itself would be refused).
      if (!(worker.db.dialect === "postgres" && username.includes("\u0000"))) {
        assert.equal(
          await worker.count("SELECT COUNT(*) AS n FROM users WHERE username = ?1", username.toLowerCase()),
          0,
        );
      }
    });
  }

  test("an email with a Unicode domain is accepted, stored in its IDNA form, and logs in in any case", async () => {
    const local = uniqueName("Jörg");
    const email = `${local}@Bücher.DE`;
    const expected = `${local.toLowerCase()}@xn--bcher-kva.de`;
    const body = assertTokenResponse(
      await post(worker, SIGNUP, { username: uniqueName(), email, password: STRONG_PASSWORD }),
      201,
    );
    assert.equal(body.user.email, expected);
    assert.equal((await worker.userRow(body.user.id)).email, expected);
    const login = await post(worker, LOGIN, { email: `${local.toUpperCase()}@BÜCHER.de`, password: STRONG_PASSWORD });
    assert.equal(assertTokenResponse(login, 200).user.id, body.user.id);
  });

  test("a password of 8 emoji is accepted and logs in; the same emoji in another order do not", async () => {
    const account = await worker.signup({ password: EMOJI_PASSWORD });
    const ok = await worker.attemptLogin(account.username, EMOJI_PASSWORD);
    assert.equal(assertTokenResponse(ok, 200).user.id, account.user.id);
    const reordered = [...EMOJI_PASSWORD].reverse().join("");
    assertUnauthorized(
      assert,
      await worker.attemptLogin(account.username, reordered),
      INVALID_CREDENTIALS,
    );
  });

  // --- uniqueness -----------------------------------------------------------------------------

  test('a username taken in another case ("Bob" then "bob") is a 409 and leaves one row', async () => {
    const suffix = uniqueName("x");
    const first = await post(worker, SIGNUP, { username: `Bob_${suffix}`, password: STRONG_PASSWORD });
    assertTokenResponse(first, 201);
    const before = await tableCounts(worker);
    const second = await post(worker, SIGNUP, { username: `bob_${suffix}`, password: STRONG_PASSWORD });
    const problem = assertProblem(assert, second, 409);
    assert.equal(problem.type, "urn:edge-auth:problem:username_taken");
    assert.equal(problem.detail, "Username is already taken");
    assert.deepEqual(await tableCounts(worker), before);
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM users WHERE username = ?1", `bob_${suffix}`.toLowerCase()),
      1,
    );
  });

  test("an email taken in another case is a 409; the failed signup wrote nothing, so its username is still free", async () => {
    const local = uniqueName("Carol");
    assertTokenResponse(
      await post(worker, SIGNUP, { username: uniqueName(), email: `${local}@Example.com`, password: STRONG_PASSWORD }),
      201,
    );
    const before = await tableCounts(worker);
    const fresh = uniqueName("fresh");
    const conflict = await post(worker, SIGNUP, {
      username: fresh,
      email: `${local.toUpperCase()}@EXAMPLE.COM`,
      password: STRONG_PASSWORD,
    });
    const problem = assertProblem(assert, conflict, 409);
    assert.equal(problem.detail, "Email is already registered");
    assert.deepEqual(await tableCounts(worker), before, "no user, role, session or token written");

    const retry = await post(worker, SIGNUP, {
      username: fresh,
      email: `${uniqueName("other")}@example.com`,
      password: STRONG_PASSWORD,
    });
    assert.equal(assertTokenResponse(retry, 201).user.username, fresh);
    assert.equal(await userCount(worker), before.users + 1);
  });

  for (const racers of [2, 10]) {
    test(`${racers} simultaneous signups of one username: exactly one 201, the rest 409, one row`, async () => {
      const username = uniqueName(`race${racers}`);
      const before = await tableCounts(worker);
      const responses = await Promise.all(
        Array.from({ length: racers }, () => post(worker, SIGNUP, { username, password: STRONG_PASSWORD })),
      );
      const statuses = responses.map((response) => response.status).sort();
      assert.deepEqual(statuses, [201, ...Array(racers - 1).fill(409)], responses.map((r) => r.text).join("\n"));
      for (const response of responses.filter((r) => r.status === 409)) {
        assert.equal(assertProblem(assert, response, 409).detail, "Username is already taken");
      }
      const winner = responses.find((r) => r.status === 201).json;
      const rows = await worker.db.query("SELECT id FROM users WHERE username = ?1", username);
      assert.deepEqual(rows.map((row) => row.id), [winner.user.id]);
      const afterCounts = await tableCounts(worker);
      for (const table of Object.keys(before)) {
        assert.equal(afterCounts[table], before[table] + 1, `${table}: only the winner's rows`);
      }
    });
  }

  test("the Worker's logs never contain a password or a refresh token", async () => {
    const account = await worker.signup();
    await worker.attemptLogin(account.username, "wrong password here");
    await sleep(100); // let stdout drain
    const logs = worker.logs.join("\n");
    assert.ok(logs.includes('"event":"request"'), "logs were captured");
    assert.ok(!logs.includes(STRONG_PASSWORD), "no password");
    assert.ok(!logs.includes("wrong password here"), "no attempted password");
    assert.ok(!logs.includes(account.refresh_token), "no refresh token");
    assert.ok(!logs.includes(account.access_token), "no access token");
  });
});

// ---------------------------------------------------------------------------------------------

describe("POST /api/v1/auth/login", () => {
  let worker;
  let account; // signed up as Dora_... with Dora.…@Example.org
  let emailLocal;
  before(async () => {
    worker = await startWorker();
    emailLocal = uniqueName("Dora.Mail");
    account = await worker.signup({ username: uniqueName("Dora"), email: `${emailLocal}@Example.org` });
  });
  after(() => worker.dispose());

  const login = (body, extra) => post(worker, LOGIN, body, extra);

  test("by username in upper and lower case: 200 token response for the same user, a new session each time", async () => {
    const sessionsBefore = await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id);
    const sids = new Set([decodeJwt(account.access_token).sid]);
    for (const username of [account.username.toUpperCase(), account.username.toLowerCase()]) {
      const body = assertTokenResponse(await login({ username, password: STRONG_PASSWORD }), 200);
      assert.equal(body.user.id, account.user.id);
      assert.equal(body.user.username, account.username.toLowerCase());
      assert.equal(body.user.email, `${emailLocal.toLowerCase()}@example.org`);
      assert.notEqual(body.refresh_token, account.refresh_token);
      sids.add(decodeJwt(body.access_token).sid);
    }
    assert.equal(sids.size, 3, "each login has its own session id");
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id),
      sessionsBefore + 2,
    );
  });

  test("by an email (any case) in the username field: 200 for the same user", async () => {
    const body = assertTokenResponse(
      await login({ username: `${emailLocal.toUpperCase()}@EXAMPLE.ORG`, password: STRONG_PASSWORD }),
      200,
    );
    assert.equal(body.user.id, account.user.id);
  });

  test("by the email field: 200 for the same user, and the token works on /users/me", async () => {
    const body = assertTokenResponse(
      await login({ email: ` ${emailLocal}@example.org `, password: STRONG_PASSWORD }),
      200,
    );
    assert.equal(body.user.id, account.user.id);
    const me = await worker.me(body.access_token);
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.id, account.user.id);
  });

  test("a wrong password and an unknown account give the same 401, differing only in request_id", async () => {
    const responses = [
      await login({ username: account.username, password: "not the right password" }),
      await login({ username: uniqueName("nobody"), password: "not the right password" }),
      await login({ email: `${emailLocal}@example.org`, password: "not the right password" }),
      await login({ email: `${uniqueName("nobody")}@example.org`, password: STRONG_PASSWORD }),
      await login({ username: "x!", password: STRONG_PASSWORD }), // not even a valid username
    ];
    const bodies = responses.map((response) => assertUnauthorized(assert, response, INVALID_CREDENTIALS));
    const ids = new Set(bodies.map((body) => body.request_id));
    assert.equal(ids.size, responses.length, "each response has its own request id");
    const comparable = bodies.map(withoutRequestId);
    for (const body of comparable.slice(1)) assert.deepEqual(body, comparable[0]);
    assert.deepEqual(Object.keys(comparable[0]).sort(), ["detail", "status", "title", "type"]);
    const challenges = new Set(responses.map((response) => response.headers.get("www-authenticate")));
    assert.equal(challenges.size, 1, "same challenge header");
  });

  test("failed logins are logged as security events with a masked identifier", async () => {
    const unknownEmail = `${uniqueName("ghost")}@example.net`;
    const response = await login({ email: unknownEmail, password: "not the right password" });
    assertUnauthorized(assert, response, INVALID_CREDENTIALS);
    await sleep(100);
    const events = worker
      .events()
      .filter((event) => event.event === "login_failed" && event.request_id === response.json.request_id);
    assert.equal(events.length, 1, worker.logs.slice(-5).join("\n"));
    assert.equal(events[0].reason, "unknown_account");
    assert.equal(events[0].identifier, `${unknownEmail[0]}***@example.net`);
    assert.ok(!worker.logs.join("\n").includes(unknownEmail), "the full email is not logged");
  });

  test("an empty email field does not hide the username sent beside it", async () => {
    const response = await post(worker, LOGIN, {
      email: "",
      username: account.username,
      password: account.password,
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.user.id, account.user.id);
  });

  test("a missing password or identifier is a 422 naming what is missing", async () => {
    assertFieldErrors(assert, await login({ username: account.username }), [{ field: "password", message: "is required" }]);
    assertFieldErrors(assert, await login({ password: STRONG_PASSWORD }), [
      { field: "username", message: "username or email is required" },
    ]);
    assertFieldErrors(assert, await login({}), [
      { field: "password", message: "is required" },
      { field: "username", message: "username or email is required" },
    ]);
    assertFieldErrors(assert, await login({ username: account.username, password: 12345678 }), [
      { field: "password", message: "must be a string" },
    ]);
  });

  test("a password over 1024 bytes is the generic 401, even with the right account", async () => {
    const before = await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id);
    for (const password of ["x".repeat(1025), STRONG_PASSWORD + "!".repeat(1025 - STRONG_PASSWORD.length)]) {
      assertUnauthorized(assert, await login({ username: account.username, password }), INVALID_CREDENTIALS);
    }
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id),
      before,
      "no session created",
    );
  });

  test("login with a non-JSON body is a 415, malformed JSON a 400", async () => {
    const textPlain = await worker.send(LOGIN, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ username: account.username, password: STRONG_PASSWORD }),
    });
    assertProblem(assert, textPlain, 415);
    const malformed = await worker.send(LOGIN, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{username:",
    });
    assertProblem(assert, malformed, 400);
  });
});

// ---------------------------------------------------------------------------------------------

describe("password rehash when the argon2 parameters change", () => {
  let dir;
  const workers = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edge-auth-rehash-"));
  });
  after(async () => {
    for (const worker of workers) await worker.dispose().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  test("a hash made with m=1024,t=1 is replaced by the default parameters on the next login", async () => {
    const cheap = await startWorker({
      persist: dir,
      vars: { ARGON2_MEMORY_KIB: "1024", ARGON2_ITERATIONS: "1" },
    });
    workers.push(cheap);
    const account = await cheap.signup({ email: `${uniqueName("rehash")}@example.com` });
    const original = (await cheap.userRow(account.user.id)).password_hash;
    assert.match(original, /^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
    await cheap.dispose();

    const current = await startWorker({ persist: dir, signingKey: cheap.seed });
    workers.push(current);
    // Same database: the account is there with its old hash.
    assert.equal((await current.userRow(account.user.id)).password_hash, original);

    const login = await current.attemptLogin(account.username, account.password);
    assert.equal(assertTokenResponse(login, 200).user.id, account.user.id);
    const rehashed = (await current.userRow(account.user.id)).password_hash;
    assert.match(rehashed, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.notEqual(rehashed, original);

    // The new hash verifies, is not rehashed again, and a wrong password still fails.
    const again = await current.attemptLogin(account.username, account.password);
    assertTokenResponse(again, 200);
    assert.equal((await current.userRow(account.user.id)).password_hash, rehashed);
    assertUnauthorized(
      assert,
      await current.attemptLogin(account.username, "wrong password entirely"),
      INVALID_CREDENTIALS,
    );
    // Tokens from the first Worker (same signing key, same database) stay valid.
    const me = await current.me(account.access_token);
    assert.equal(me.status, 200, me.text);
    const refreshed = await current.refresh(account.refresh_token);
    assertTokenResponse(refreshed, 200);
  });
});

// ---------------------------------------------------------------------------------------------

describe("login rate limit (RATE_LIMIT_LOGIN 10/60 per client IP)", () => {
  let worker;
  let account;
  before(async () => {
    // Lockout and the per-name budget are tested in abuse.test.mjs; here only the per-IP
    // budget may refuse.
    worker = await startWorker({
      vars: {
        RATE_LIMIT_LOGIN: "10/60",
        RATE_LIMIT_LOGIN_ACCOUNT: "1000/60",
        LOGIN_LOCKOUT_THRESHOLD: "1000",
      },
    });
    account = await worker.signup();
  });
  after(() => worker.dispose());

  const loginFrom = (ip, password = "not the right password", username = account.username) =>
    worker.attemptLogin(username, password, { "cf-connecting-ip": ip });

  test("10 logins from one IP pass the limiter; the 11th is a 429 with Retry-After and RateLimit headers", async () => {
    const ip = "203.0.113.7";
    for (let i = 0; i < 10; i += 1) {
      const response = await loginFrom(ip, i === 0 ? STRONG_PASSWORD : "not the right password");
      assert.equal(response.status, i === 0 ? 200 : 401, `attempt ${i + 1}: ${response.text}`);
      assert.equal(response.headers.get("ratelimit-limit"), "10");
      assert.equal(response.headers.get("ratelimit-remaining"), String(9 - i), `attempt ${i + 1}`);
    }
    // The right password does not get past a spent budget.
    const refused = await loginFrom(ip, STRONG_PASSWORD);
    const body = assertProblem(assert, refused, 429);
    assert.equal(body.type, "urn:edge-auth:problem:rate_limited");
    const retryAfter = Number(refused.headers.get("retry-after"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${refused.headers.get("retry-after")}`);
    assert.equal(body.detail, `Too many requests; retry in ${retryAfter} seconds`);
    assert.equal(refused.headers.get("ratelimit-limit"), "10");
    assert.equal(refused.headers.get("ratelimit-remaining"), "0");
    assert.ok(Number(refused.headers.get("ratelimit-reset")) >= 1);
    assertEdgeHeaders(assert, refused);
  });

  test("another client IP still gets through, and other routes are not limited by the login budget", async () => {
    const still = await loginFrom("203.0.113.7", STRONG_PASSWORD);
    assertProblem(assert, still, 429);
    const other = await loginFrom("203.0.113.8", STRONG_PASSWORD);
    assert.equal(assertTokenResponse(other, 200).user.id, account.user.id);
    const refresh = await post(worker, REFRESH, { refresh_token: "x".repeat(43) }, {
      headers: { "cf-connecting-ip": "203.0.113.7" },
    });
    assertUnauthorized(assert, refresh, INVALID_REFRESH);
  });

  test("50 concurrent logins from a fresh IP: exactly 10 pass the limiter", async () => {
    const ip = "198.51.100.50";
    const responses = await Promise.all(Array.from({ length: 50 }, () => loginFrom(ip)));
    const passed = responses.filter((response) => response.status !== 429);
    assert.equal(passed.length, 10, responses.map((r) => r.status).join(","));
    for (const response of passed) assertUnauthorized(assert, response, INVALID_CREDENTIALS);
    for (const response of responses.filter((r) => r.status === 429)) {
      assertProblem(assert, response, 429);
      assert.ok(Number(response.headers.get("retry-after")) >= 1);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe("POST /api/v1/auth/refresh", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());


  test("returns a new pair for the same session; the new access token works, the old refresh token is spent", async () => {
    const account = await worker.signup();
    const response = await worker.refresh(account.refresh_token);
    const body = assertTokenResponse(response, 200);
    assert.notEqual(body.refresh_token, account.refresh_token);
    assert.notEqual(body.access_token, account.access_token);
    assert.equal(body.user.id, account.user.id);
    assert.deepEqual(body.user, account.user);

    const before = decodeJwt(account.access_token);
    const afterClaims = decodeJwt(body.access_token);
    assert.equal(afterClaims.sid, before.sid, "same session");
    assert.equal(afterClaims.sub, before.sub);
    assert.notEqual(afterClaims.jti, before.jti);
    await verifyWithJose(worker, body.access_token);

    const me = await worker.me(body.access_token);
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.id, account.user.id);

    const spent = await worker.db.first(
      "SELECT * FROM refresh_tokens WHERE token_hash = ?1",
      digest(account.refresh_token),
    );
    assert.ok(spent.used_at >= nowSeconds() - 5, "used_at is set");
    assert.equal(spent.replaced_by, digest(body.refresh_token));
    const successor = await worker.db.first(
      "SELECT * FROM refresh_tokens WHERE token_hash = ?1",
      digest(body.refresh_token),
    );
    assert.equal(successor.session_id, before.sid);
    assert.equal(successor.used_at, null);
  });

  for (const [label, token] of [
    ["garbage", "garbage"],
    ["a 42-character token", "a".repeat(42)],
    ["a 44-character token", "a".repeat(44)],
    ["a padded token", `${"a".repeat(42)}=`],
    ["an empty string", ""],
    ["a well-formed but unknown token", "A".repeat(43)],
  ]) {
    test(`${label} as refresh token is a 401`, async () => {
      assertUnauthorized(assert, await worker.refresh(token), INVALID_REFRESH);
    });
  }

  test("a missing or non-string refresh_token is a 422 naming it", async () => {
    assertFieldErrors(assert, await post(worker, REFRESH, {}), [{ field: "refresh_token", message: "is required" }]);
    assertFieldErrors(assert, await post(worker, REFRESH, { refresh_token: 5 }), [
      { field: "refresh_token", message: "must be a string" },
    ]);
  });

  test("an expired refresh token is a 401", async () => {
    const account = await worker.signup();
    await worker.db.run(
      "UPDATE refresh_tokens SET expires_at = ?2 WHERE token_hash = ?1",
      digest(account.refresh_token),
      nowSeconds() - 1,
    );
    assertUnauthorized(assert, await worker.refresh(account.refresh_token), INVALID_REFRESH);
    const row = await worker.db.first(
      "SELECT used_at FROM refresh_tokens WHERE token_hash = ?1",
      digest(account.refresh_token),
    );
    assert.equal(row.used_at, null, "a refused token is not consumed");
  });

  test("a refresh token whose session is revoked is a 401, and so is its access token", async () => {
    const account = await worker.signup();
    // Control: the session works before it is revoked.
    assert.equal((await worker.me(account.access_token)).status, 200);
    await worker.db.run(
      "UPDATE sessions SET revoked_at = ?2 WHERE id = ?1",
      decodeJwt(account.access_token).sid,
      nowSeconds(),
    );
    assertUnauthorized(assert, await worker.refresh(account.refresh_token), INVALID_REFRESH);
    assertUnauthorized(assert, await worker.me(account.access_token), SESSION_GONE);
  });

  test("a refresh token whose session has expired is a 401", async () => {
    const account = await worker.signup();
    await worker.db.run(
      "UPDATE sessions SET idle_expires_at = ?2 WHERE id = ?1",
      decodeJwt(account.access_token).sid,
      nowSeconds() - 1,
    );
    assertUnauthorized(assert, await worker.refresh(account.refresh_token), INVALID_REFRESH);
  });
});

// ---------------------------------------------------------------------------------------------

describe("POST /api/v1/auth/password/change", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  const NEW_PASSWORD = "a brand new passphrase 42";
  const change = (token, body) => post(worker, CHANGE, body, { token });

  test("without a bearer token it is a 401 'Not authenticated' with a Bearer challenge", async () => {
    const response = await post(worker, CHANGE, { current_password: STRONG_PASSWORD, new_password: NEW_PASSWORD });
    assertUnauthorized(assert, response, "Not authenticated");
  });

  test("a wrong current password is a 422 naming current_password; the hash is unchanged", async () => {
    const account = await worker.signup();
    const hash = (await worker.userRow(account.user.id)).password_hash;
    assertFieldErrors(
      assert,
      await change(account.access_token, { current_password: "not my password", new_password: NEW_PASSWORD }),
      [{ field: "current_password", message: "is incorrect" }],
    );
    assert.equal((await worker.userRow(account.user.id)).password_hash, hash);
  });

  test("a new password equal to the current one is a 422 naming new_password", async () => {
    const account = await worker.signup();
    assertFieldErrors(
      assert,
      await change(account.access_token, { current_password: STRONG_PASSWORD, new_password: STRONG_PASSWORD }),
      [{ field: "new_password", message: "must differ from the current password" }],
    );
  });

  test("a new password failing the policy, or missing fields, is a 422 naming each", async () => {
    const account = await worker.signup();
    assertFieldErrors(
      assert,
      await change(account.access_token, { current_password: STRONG_PASSWORD, new_password: "password123" }),
      [{ field: "new_password", message: TOO_COMMON }],
    );
    assertFieldErrors(assert, await change(account.access_token, {}), [
      { field: "current_password", message: "is required" },
      { field: "new_password", message: "is required" },
    ]);
  });

  test("success: 200 {detail, sessions_revoked}; only the new password logs in; other sessions end, this one stays", async () => {
    const account = await worker.signup(); // session A: the one that changes the password
    const other = assertTokenResponse(
      await worker.attemptLogin(account.username, STRONG_PASSWORD),
      200,
    ); // session B
    const third = assertTokenResponse(
      await worker.attemptLogin(account.username, STRONG_PASSWORD),
      200,
    ); // session C
    const oldHash = (await worker.userRow(account.user.id)).password_hash;

    const response = await change(account.access_token, {
      current_password: STRONG_PASSWORD,
      new_password: NEW_PASSWORD,
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(response.json, { detail: "Password changed", sessions_revoked: 2 });

    const row = await worker.userRow(account.user.id);
    assert.notEqual(row.password_hash, oldHash);
    assert.match(row.password_hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    const sessions = await worker.db.query("SELECT id, revoked_at FROM sessions WHERE user_id = ?1", account.user.id);
    const revoked = Object.fromEntries(sessions.map((s) => [s.id, s.revoked_at !== null]));
    assert.deepEqual(revoked, {
      [decodeJwt(account.access_token).sid]: false,
      [decodeJwt(other.access_token).sid]: true,
      [decodeJwt(third.access_token).sid]: true,
    });

    // Old password out, new password in.
    assertUnauthorized(
      assert,
      await worker.attemptLogin(account.username, STRONG_PASSWORD),
      INVALID_CREDENTIALS,
    );
    const fresh = await worker.attemptLogin(account.username, NEW_PASSWORD);
    assert.equal(assertTokenResponse(fresh, 200).user.id, account.user.id);

    // The other sessions' tokens are dead.
    for (const session of [other, third]) {
      assertUnauthorized(assert, await worker.refresh(session.refresh_token), INVALID_REFRESH);
      assertUnauthorized(assert, await worker.me(session.access_token), SESSION_GONE);
    }

    // The session that made the change is still signed in, and can refresh.
    const me = await worker.me(account.access_token);
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.id, account.user.id);
    assertTokenResponse(await worker.refresh(account.refresh_token), 200);
  });
});
