// The signed-in account (`/api/v1/users/me`: read, update, delete), bearer authentication
// against forged tokens, and the published key set (`/.well-known/jwks.json`), including keys
// kept for verification during a rotation (`JWT_VERIFY_KEYS`).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID } from "node:crypto";
import {
  SignJWT,
  importJWK,
  base64url,
  decodeJwt,
  decodeProtectedHeader,
  calculateJwkThumbprint,
} from "jose";
import {
  startWorker,
  assertProblem,
  assertUnauthorized,
  assertFieldErrors,
  assertEdgeHeaders,
  uniqueName,
  nowSeconds,
  sleep,
  STRONG_PASSWORD,
  ISSUER,
  AUDIENCE,
} from "./helpers.mjs";

const INVALID_CREDENTIALS = "Invalid username or password";
const SESSION_GONE = "Session is no longer valid";
const RFC3339_SECONDS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
const USER_KEYS = ["created_at", "email", "email_verified", "id", "roles", "updated_at", "username"];

const b64json = (value) => base64url.encode(JSON.stringify(value));

/** Make every session of an account look as if it signed in `seconds` ago. */
async function signedInSecondsAgo(worker, id, seconds) {
  await worker.db.run("UPDATE sessions SET created_at = ?2 WHERE user_id = ?1", id, nowSeconds() - seconds);
}

/** The x (base64url public key) of an Ed25519 seed, derived independently of the Worker. */
function publicXFromSeed(seed) {
  const pkcs8 = Buffer.concat([
    Buffer.from("302e020100300506032b657004220420", "hex"),
    Buffer.from(seed, "base64url"),
  ]);
  const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  return createPublicKey(privateKey).export({ format: "jwk" }).x;
}

/** The Worker's published signing key and its private half rebuilt from the seed. */
async function realSigningKey(worker) {
  const jwks = await worker.request("GET", "/.well-known/jwks.json");
  assert.equal(jwks.status, 200, jwks.text);
  const [{ x, kid }] = jwks.json.keys;
  const key = await importJWK({ kty: "OKP", crv: "Ed25519", d: worker.seed, x }, "EdDSA");
  return { x, kid, key };
}

/** Claims for a real session; `overrides` replace claims, an undefined value drops one. */
function claimsFor(session, overrides = {}) {
  const now = nowSeconds();
  const claims = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: session.sub,
    sid: session.sid,
    jti: randomUUID(),
    roles: ["user"],
    iat: now,
    nbf: now,
    exp: now + 600,
    ...overrides,
  };
  for (const [name, value] of Object.entries(claims)) {
    if (value === undefined) delete claims[name];
  }
  return claims;
}

/** Sign claims as an EdDSA JWT with the given key; `kid: null` leaves the kid out. */
function signToken(claims, { key, kid, alg = "EdDSA" }) {
  const header = { alg, typ: "JWT" };
  if (kid !== null) header.kid = kid;
  return new SignJWT(claims).setProtectedHeader(header).sign(key);
}

/** The sub and sid of an access token the Worker issued. */
function sessionOf(accessToken) {
  const { sub, sid } = decodeJwt(accessToken);
  return { sub, sid };
}

describe("GET /api/v1/users/me", () => {
  let worker;
  let account;
  before(async () => {
    worker = await startWorker();
    account = await worker.signup({ email: "Me.Reader@Example.COM" });
  });
  after(() => worker.dispose());

  test("signatures are checked by WebCrypto, never by the slower fallback", async () => {
    const account = await worker.signup();
    const ok = await worker.request("GET", "/api/v1/users/me", { token: account.access_token });
    assert.equal(ok.status, 200);
    const [header, payload, signature] = account.access_token.split(".");
    const flipped = signature.slice(0, 10) + (signature[10] === "A" ? "B" : "A") + signature.slice(11);
    const forged = await worker.request("GET", "/api/v1/users/me", {
      token: `${header}.${payload}.${flipped}`,
    });
    assertUnauthorized(assert, forged, "Invalid token");
    await sleep(50);
    assert.ok(!worker.logs.some((line) => line.includes("webcrypto_unavailable")), worker.logs.join("\n"));
  });

  test("a valid token returns the public profile, never the password hash, and is not cached", async () => {
    const response = await worker.request("GET", "/api/v1/users/me", {
      token: account.access_token,
    });
    assert.equal(response.status, 200, response.text);
    assert.match(response.headers.get("content-type"), /^application\/json/);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assertEdgeHeaders(assert, response);

    const user = response.json;
    assert.deepEqual(Object.keys(user).sort(), USER_KEYS);
    assert.equal(user.id, decodeJwt(account.access_token).sub);
    assert.equal(user.username, account.username);
    assert.equal(user.email, "me.reader@example.com");
    assert.equal(user.email_verified, false);
    assert.deepEqual(user.roles, ["user"]);
    assert.match(user.created_at, RFC3339_SECONDS);
    assert.match(user.updated_at, RFC3339_SECONDS);
    assert.ok(!response.text.includes("password"), "no password material in the body");
    assert.ok(!response.text.includes("$argon2"), "no hash in the body");

    const row = await worker.userRow(user.id);
    assert.equal(user.created_at, new Date(row.created_at * 1000).toISOString().replace(".000", ""));
    assert.equal(user.updated_at, new Date(row.updated_at * 1000).toISOString().replace(".000", ""));
  });

  test("the Bearer scheme is matched case-insensitively", async () => {
    const response = await worker.request("GET", "/api/v1/users/me", {
      headers: { authorization: `bEARER ${account.access_token}` },
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.username, account.username);
  });

  const missing = [
    ["no Authorization header", undefined],
    ['"Bearer" with no token', "Bearer"],
    ['"Bearer " with only spaces', "Bearer    "],
    ["the Basic scheme", "Basic xyz"],
    ["a token without a scheme", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"],
  ];
  for (const [label, authorization] of missing) {
    test(`${label} is a 401 "Not authenticated" with a Bearer challenge`, async () => {
      const headers = authorization === undefined ? {} : { authorization };
      const response = await worker.request("GET", "/api/v1/users/me", { headers });
      assertUnauthorized(assert, response, "Not authenticated");
      assertEdgeHeaders(assert, response);
      assert.equal(response.headers.get("cache-control"), "no-store");
    });
  }

  for (const garbage of ["garbage", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9"]) {
    test(`a garbage bearer token (${JSON.stringify(garbage)}) is a 401 "Invalid token"`, async () => {
      const response = await worker.request("GET", "/api/v1/users/me", { token: garbage });
      assertUnauthorized(assert, response, "Invalid token");
    });
  }
});

describe("forged and unusable access tokens", () => {
  let worker;
  let account;
  let session;
  let signing; // { x, kid, key }

  before(async () => {
    worker = await startWorker();
    account = await worker.signup();
    session = sessionOf(account.access_token);
    signing = await realSigningKey(worker);
  });
  after(() => worker.dispose());

  test("control: a token signed here with the real key, kid and claims is accepted", async () => {
    // Proves the forging machinery is right, so every refusal below is for its one defect.
    assert.equal(decodeProtectedHeader(account.access_token).kid, signing.kid);
    const token = await signToken(claimsFor(session), signing);
    const response = await worker.me(token);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.id, session.sub);
    assert.equal(response.json.username, account.username);
  });

  test("roles claimed in a validly signed token are not trusted; the profile shows stored roles", async () => {
    const token = await signToken(claimsFor(session, { roles: ["admin"] }), signing);
    const response = await worker.me(token);
    assert.equal(response.status, 200, response.text);
    assert.deepEqual(response.json.roles, ["user"]);
  });

  test('an expired token (exp 10 minutes ago) is a 401 "Token has expired"', async () => {
    const now = nowSeconds();
    const token = await signToken(
      claimsFor(session, { iat: now - 1200, nbf: now - 1200, exp: now - 600 }),
      signing,
    );
    assertUnauthorized(assert, await worker.me(token), "Token has expired");
  });

  test("a token for another audience is refused", async () => {
    const token = await signToken(claimsFor(session, { aud: "another-app" }), signing);
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a token from another issuer is refused", async () => {
    const token = await signToken(claimsFor(session, { iss: "https://evil.example" }), signing);
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a token not valid before 10 minutes from now is refused", async () => {
    const token = await signToken(claimsFor(session, { nbf: nowSeconds() + 600 }), signing);
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  for (const claim of ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]) {
    test(`a validly signed token without "${claim}" is refused`, async () => {
      const token = await signToken(claimsFor(session, { [claim]: undefined }), signing);
      assertUnauthorized(assert, await worker.me(token), "Invalid token");
    });
  }

  test('an unsigned token (alg "none") is refused', async () => {
    const header = b64json({ alg: "none", typ: "JWT", kid: signing.kid });
    const token = `${header}.${b64json(claimsFor(session))}.`;
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("an HS256 token keyed with the public key bytes is refused (algorithm confusion)", async () => {
    const secret = base64url.decode(signing.x);
    assert.equal(secret.length, 32);
    const token = await signToken(claimsFor(session), { key: secret, kid: signing.kid, alg: "HS256" });
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a token signed by a different Ed25519 key under the real kid is refused", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const key = await importJWK(privateKey.export({ format: "jwk" }), "EdDSA");
    const token = await signToken(claimsFor(session), { key, kid: signing.kid });
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a token with an unknown kid is refused, even when signed with the real key", async () => {
    const token = await signToken(claimsFor(session), { key: signing.key, kid: "not-a-known-kid" });
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a token without a kid is refused, even when signed with the real key", async () => {
    const token = await signToken(claimsFor(session), { key: signing.key, kid: null });
    assert.equal(decodeProtectedHeader(token).kid, undefined);
    assertUnauthorized(assert, await worker.me(token), "Invalid token");
  });

  test("a payload tampered with after signing (roles -> admin) is refused", async () => {
    const [header, payload, signature] = account.access_token.split(".");
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
    assert.deepEqual(claims.roles, ["user"]);
    claims.roles = ["admin"];
    const tampered = `${header}.${b64json(claims)}.${signature}`;
    assertUnauthorized(assert, await worker.me(tampered), "Invalid token");
    // The untouched original still works, so only the tampering was refused.
    assert.equal((await worker.me(account.access_token)).status, 200);
  });

  test("a valid signature for a session that does not exist is refused", async () => {
    const token = await signToken(claimsFor(session, { sid: randomUUID() }), signing);
    assertUnauthorized(assert, await worker.me(token), SESSION_GONE);
  });

  test("a revoked or expired session ends its tokens", async () => {
    // Two more sessions of the account, made by logging in; then one is revoked and the
    // other's expiry (whatever columns hold it) is put in the past.
    const sids = [];
    for (let i = 0; i < 2; i += 1) {
      const login = await worker.request("POST", "/api/v1/auth/login", {
        body: { username: account.username, password: account.password },
      });
      assert.equal(login.status, 200, login.text);
      sids.push(sessionOf(login.json.access_token).sid);
    }
    const [revoked, expired] = sids;
    const expiryColumns = (await worker.columnsOf("sessions")).filter((name) => /expires_at$/.test(name));
    assert.ok(expiryColumns.length > 0, "sessions have an expiry column");

    const now = nowSeconds();
    const live = await signToken(claimsFor({ sub: session.sub, sid: revoked }), signing);
    assert.equal((await worker.me(live)).status, 200, "accepted while the session is live");

    await worker.db.run("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1", revoked, now - 10);
    await worker.db.run(
      `UPDATE sessions SET ${expiryColumns.map((c) => `${c} = ?2`).join(", ")} WHERE id = ?1`,
      expired,
      now - 10,
    );
    for (const sid of [revoked, expired]) {
      const token = await signToken(claimsFor({ sub: session.sub, sid }), signing);
      assertUnauthorized(assert, await worker.me(token), SESSION_GONE);
    }
    // The account's first session is unaffected.
    assert.equal((await worker.me(account.access_token)).status, 200);
  });

  test("a session of another account cannot be paired with this account's sub", async () => {
    const other = await worker.signup();
    const otherSession = sessionOf(other.access_token);
    const token = await signToken(claimsFor({ sub: session.sub, sid: otherSession.sid }), signing);
    assertUnauthorized(assert, await worker.me(token), SESSION_GONE);
  });

  test("a valid signature for a deleted account is refused", async () => {
    const doomed = await worker.signup();
    const doomedSession = sessionOf(doomed.access_token);
    const before = await signToken(claimsFor(doomedSession), signing);
    assert.equal((await worker.me(before)).status, 200, "accepted while the account exists");

    const deleted = await worker.request("DELETE", "/api/v1/users/me", {
      token: doomed.access_token,
      body: { password: doomed.password },
    });
    assert.equal(deleted.status, 204, deleted.text);

    const after = await signToken(claimsFor(doomedSession), signing);
    assertUnauthorized(assert, await worker.me(after), SESSION_GONE);
  });
});

describe("PATCH and PUT /api/v1/users/me", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  const update = (token, body, { method = "PATCH", headers } = {}) =>
    worker.request(method, "/api/v1/users/me", { token, body, headers });

  test("a new username is stored lower-cased, login follows it, and the old name is freed", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);
    const wanted = uniqueName("ReNamed_User");
    assert.notEqual(wanted, wanted.toLowerCase());

    const response = await update(account.access_token, { username: wanted });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(Object.keys(response.json).sort(), USER_KEYS);
    assert.equal(response.json.id, id);
    assert.equal(response.json.username, wanted.toLowerCase());
    assert.equal(response.json.email, null);
    assert.equal(response.json.created_at, new Date(rowBefore.created_at * 1000).toISOString().replace(".000", ""));
    const row = await worker.userRow(id);
    assert.equal(row.username, wanted.toLowerCase());
    assert.equal(row.password_hash, rowBefore.password_hash);

    // The access token keeps working (it names the account by id).
    const me = await worker.request("GET", "/api/v1/users/me", { token: account.access_token });
    assert.equal(me.json.username, wanted.toLowerCase());

    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: wanted, password: account.password },
    });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.json.user.id, id);
    const oldLogin = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: account.password },
    });
    assertUnauthorized(assert, oldLogin, INVALID_CREDENTIALS);

    const reuse = await worker.signup({ username: account.username });
    assert.equal(reuse.user.username, account.username);
    assert.notEqual(reuse.user.id, id);
  });

  test("a username taken by another account, in any case, is a 409 and changes nothing", async () => {
    const owner = await worker.signup();
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);

    const response = await update(account.access_token, { username: owner.username.toUpperCase() });
    const body = assertProblem(assert, response, 409);
    assert.equal(body.type, "urn:edge-auth:problem:username_taken");
    assert.equal(body.detail, "Username is already taken");
    assert.deepEqual(await worker.userRow(id), rowBefore);
    const ownerRow = await worker.userRow(decodeJwt(owner.access_token).sub);
    assert.equal(ownerRow.username, owner.username);
  });

  test("an email taken by another account is only proposed, changes nothing, and reveals nothing", async () => {
    const owner = await worker.signup({ email: `${uniqueName("own")}@example.com` });
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);
    const response = await update(account.access_token, {
      email: owner.user.email.toUpperCase(),
      current_password: account.password,
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.pending_email, owner.user.email);
    assert.equal(response.json.email, null);
    assert.deepEqual(await worker.userRow(id), rowBefore);
  });

  test("an invalid username or email is a 422 naming each field", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);
    const response = await update(account.access_token, {
      username: "no spaces allowed",
      email: "not-an-email",
      current_password: account.password,
    });
    assertFieldErrors(assert, response, [
      { field: "username", message: "may contain only letters, digits and underscores" },
      { field: "email", message: "is not a valid email address" },
    ]);
    assert.deepEqual(await worker.userRow(id), rowBefore);
  });

  test("changing the email needs current_password: missing or wrong is a 422 and changes nothing", async () => {
    const account = await worker.signup({ email: `${uniqueName("old")}@example.com` });
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);

    const missing = await update(account.access_token, { email: "new.address@example.com" });
    assertFieldErrors(assert, missing, [
      { field: "current_password", message: "is required to change the email address" },
    ]);
    assert.equal(missing.json.detail, "current_password: is required to change the email address");

    const wrong = await update(account.access_token, {
      email: "new.address@example.com",
      current_password: "not the password at all",
    });
    assertFieldErrors(assert, wrong, [{ field: "current_password", message: "is incorrect" }]);
    // A failed confirmation is not an authentication failure: no Bearer challenge.
    assert.equal(wrong.headers.get("www-authenticate"), null);

    assert.deepEqual(await worker.userRow(id), rowBefore);
  });

  test("with the right current_password a new email is proposed, lower-cased, and nothing changes yet", async () => {
    const oldEmail = `${uniqueName("old")}@example.com`;
    const account = await worker.signup({ email: oldEmail });
    const id = decodeJwt(account.access_token).sub;
    await worker.db.run("UPDATE users SET email_verified = ?2 WHERE id = ?1", id, true);
    const rowBefore = await worker.userRow(id);

    const local = uniqueName("New.Mail");
    const response = await update(account.access_token, {
      email: `  ${local}@Example.ORG `,
      current_password: account.password,
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.pending_email, `${local.toLowerCase()}@example.org`);
    assert.equal(response.json.email, oldEmail.toLowerCase(), "the email changes only when confirmed");
    assert.equal(response.json.email_verified, true);
    assert.deepEqual(await worker.userRow(id), rowBefore);
    const pending = await worker.db.first(
      "SELECT email FROM one_time_tokens WHERE user_id = ?1 AND purpose = 'change_email' AND used_at IS NULL",
      id,
    );
    assert.equal(pending.email, `${local.toLowerCase()}@example.org`);
  });

  test("re-sending the current email in another case needs no password and keeps it verified", async () => {
    const email = `${uniqueName("same")}@example.com`;
    const account = await worker.signup({ email });
    const id = decodeJwt(account.access_token).sub;
    await worker.db.run("UPDATE users SET email_verified = ?2 WHERE id = ?1", id, true);
    const response = await update(account.access_token, { email: email.toUpperCase() });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.email, email);
    assert.equal(response.json.email_verified, true);
    assert.equal((await worker.userRow(id)).email_verified, true);
  });

  test("email: null with current_password removes the email (and needs the password)", async () => {
    const email = `${uniqueName("gone")}@example.com`;
    const account = await worker.signup({ email });
    const id = decodeJwt(account.access_token).sub;

    const refused = await update(account.access_token, { email: null });
    assertFieldErrors(assert, refused, [
      { field: "current_password", message: "is required to change the email address" },
    ]);
    assert.equal((await worker.userRow(id)).email, email);

    const response = await update(account.access_token, { email: null, current_password: account.password });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.email, null);
    assert.equal(response.json.email_verified, false);
    assert.equal((await worker.userRow(id)).email, null);

    // The freed address can be registered again.
    const reuse = await worker.signup({ email });
    assert.equal(reuse.user.email, email);
  });

  for (const [field, value] of [
    ["roles", ["admin"]],
    ["password", "a brand new password"],
    ["email_verified", true],
  ]) {
    test(`an unknown field (${field}) is a 422 naming it, and nothing is changed`, async () => {
      const account = await worker.signup();
      const id = decodeJwt(account.access_token).sub;
      const rowBefore = await worker.userRow(id);
      const response = await update(account.access_token, {
        username: uniqueName("sneaky"),
        [field]: value,
      });
      assertFieldErrors(assert, response, [{ field, message: "is not a field of this request" }]);
      assert.deepEqual(await worker.userRow(id), rowBefore);
      assert.deepEqual(await worker.rolesOf(id), ["user"]);
    });
  }

  test("malformed JSON is a 400, a non-JSON content type a 415, no token a 401", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const rowBefore = await worker.userRow(id);

    const malformed = await update(account.access_token, '{"username": ');
    const body400 = assertProblem(assert, malformed, 400);
    assert.equal(body400.type, "urn:edge-auth:problem:malformed_request");
    assert.match(body400.detail, /^Request body is not valid JSON/);

    const form = await update(account.access_token, "username=someone_else", {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    const body415 = assertProblem(assert, form, 415);
    assert.equal(body415.detail, "Content-Type must be application/json");

    const anonymous = await update(undefined, { username: uniqueName("anon") });
    assertUnauthorized(assert, anonymous, "Not authenticated");
    // Authentication comes before the body is even read.
    assertUnauthorized(assert, await update(undefined, "{not json"), "Not authenticated");

    assert.deepEqual(await worker.userRow(id), rowBefore);
  });

  test("PUT is an alias of PATCH: a partial update that keeps the other fields", async () => {
    const email = `${uniqueName("put")}@example.com`;
    const account = await worker.signup({ email });
    const id = decodeJwt(account.access_token).sub;
    const wanted = uniqueName("Put_Name");
    const response = await update(account.access_token, { username: wanted }, { method: "PUT" });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.username, wanted.toLowerCase());
    assert.equal(response.json.email, email, "fields left out are kept, not cleared");
    assert.equal((await worker.userRow(id)).username, wanted.toLowerCase());

    const unknown = await update(account.access_token, { roles: ["admin"] }, { method: "PUT" });
    assertFieldErrors(assert, unknown, [{ field: "roles", message: "is not a field of this request" }]);
    const noPassword = await update(account.access_token, { email: "other@example.com" }, { method: "PUT" });
    assertFieldErrors(assert, noPassword, [
      { field: "current_password", message: "is required to change the email address" },
    ]);
    assertUnauthorized(assert, await update(undefined, { username: "whoever" }, { method: "PUT" }));
  });
});

describe("DELETE /api/v1/users/me", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  const remove = (token, body, headers) =>
    worker.request("DELETE", "/api/v1/users/me", { token, body, headers });

  test("an old sign-in without a body is a 403 reauthentication_required; {} a 422 naming password", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    await signedInSecondsAgo(worker, id, 301);

    for (const [body, headers] of [[undefined, undefined], ["", { "content-type": "application/json" }], ["  ", { "content-type": "text/plain" }]]) {
      const refused = await remove(account.access_token, body, headers);
      const problem = assertProblem(assert, refused, 403);
      assert.equal(problem.type, "urn:edge-auth:problem:reauthentication_required");
    }

    const notJson = await remove(account.access_token, "password=x", { "content-type": "text/plain" });
    assert.equal(assertProblem(assert, notJson, 415).detail, "Content-Type must be application/json");

    const noPassword = await remove(account.access_token, {});
    assertFieldErrors(assert, noPassword, [{ field: "password", message: "is required" }]);

    const notAString = await remove(account.access_token, { password: 12345678 });
    assertFieldErrors(assert, notAString, [{ field: "password", message: "must be a string" }]);

    assert.ok(await worker.userRow(id), "the account still exists");

    const withPassword = await remove(account.access_token, { password: account.password });
    assert.equal(withPassword.status, 204, withPassword.text);
    assert.equal(await worker.userRow(id), null);
  });

  test("a sign-in within REAUTH_SECONDS deletes with the bearer token alone, as the seed's clients do", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    await signedInSecondsAgo(worker, id, 299);
    const response = await remove(account.access_token);
    assert.equal(response.status, 204, response.text);
    assert.equal(await worker.userRow(id), null);
    const audit = await worker.db.first(
      "SELECT actor_id FROM audit_log WHERE action = 'user.deleted' AND target_id = ?1",
      id,
    );
    assert.equal(audit.actor_id, id);

    // A JSON content type with an empty body is still "no body".
    const other = await worker.signup();
    const emptyJson = await remove(other.access_token, "", { "content-type": "application/json" });
    assert.equal(emptyJson.status, 204, emptyJson.text);
  });

  test("a refreshed session keeps the time of its password sign-in", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    await signedInSecondsAgo(worker, id, 3600);
    const refreshed = await worker.request("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: account.refresh_token },
    });
    assert.equal(refreshed.status, 200, refreshed.text);
    const refused = await remove(refreshed.json.access_token);
    assert.equal(assertProblem(assert, refused, 403).type, "urn:edge-auth:problem:reauthentication_required");
    assert.ok(await worker.userRow(id));
  });

  test("a wrong password is a 422 naming password and the account survives", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    const response = await remove(account.access_token, { password: "definitely not it" });
    assertFieldErrors(assert, response, [{ field: "password", message: "is incorrect" }]);
    assert.equal(response.headers.get("www-authenticate"), null);
    assert.ok(await worker.userRow(id));
    const me = await worker.request("GET", "/api/v1/users/me", { token: account.access_token });
    assert.equal(me.status, 200);
    assert.equal(me.json.id, id);
  });

  test("without a token the right password deletes nothing (401)", async () => {
    const account = await worker.signup();
    const id = decodeJwt(account.access_token).sub;
    assertUnauthorized(assert, await remove(undefined, { password: account.password }), "Not authenticated");
    assert.ok(await worker.userRow(id));
  });

  test("the right password deletes the account, every session and token, and nothing of others", async () => {
    const bystander = await worker.signup();
    const bystanderId = decodeJwt(bystander.access_token).sub;
    const account = await worker.signup({ email: `${uniqueName("bye")}@example.com` });
    const id = decodeJwt(account.access_token).sub;
    // A second session, so deletion is shown to end all of them.
    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: account.password },
    });
    assert.equal(login.status, 200, login.text);
    const sessionIds = (await worker.db.query("SELECT id FROM sessions WHERE user_id = ?1", id)).map((row) => row.id);
    assert.equal(sessionIds.length, 2);
    assert.equal(
      await worker.count("SELECT count(*) AS n FROM refresh_tokens WHERE session_id IN (?1, ?2)", ...sessionIds),
      2,
    );

    const response = await remove(account.access_token, { password: account.password });
    assert.equal(response.status, 204, response.text);
    assert.equal(response.text, "");
    assertEdgeHeaders(assert, response);

    for (const token of [account.access_token, login.json.access_token]) {
      const me = await worker.request("GET", "/api/v1/users/me", { token });
      assertUnauthorized(assert, me, SESSION_GONE);
    }
    const again = await remove(account.access_token, { password: account.password });
    assertUnauthorized(assert, again, SESSION_GONE);

    const relogin = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: account.password },
    });
    assertUnauthorized(assert, relogin, INVALID_CREDENTIALS);
    const byEmail = await worker.request("POST", "/api/v1/auth/login", {
      body: { email: account.user.email, password: account.password },
    });
    assertUnauthorized(assert, byEmail, INVALID_CREDENTIALS);

    for (const refreshToken of [account.refresh_token, login.json.refresh_token]) {
      const refresh = await worker.request("POST", "/api/v1/auth/refresh", {
        body: { refresh_token: refreshToken },
      });
      assertUnauthorized(assert, refresh, "Invalid or expired refresh token");
    }

    assert.equal(await worker.count("SELECT count(*) AS n FROM users WHERE id = ?1", id), 0);
    assert.equal(await worker.count("SELECT count(*) AS n FROM user_roles WHERE user_id = ?1", id), 0);
    assert.equal(await worker.count("SELECT count(*) AS n FROM sessions WHERE user_id = ?1", id), 0);
    assert.equal(
      await worker.count("SELECT count(*) AS n FROM refresh_tokens WHERE session_id IN (?1, ?2)", ...sessionIds),
      0,
    );

    // The bystander is untouched.
    assert.equal(await worker.count("SELECT count(*) AS n FROM users WHERE id = ?1", bystanderId), 1);
    assert.equal(await worker.count("SELECT count(*) AS n FROM sessions WHERE user_id = ?1", bystanderId), 1);
    const me = await worker.request("GET", "/api/v1/users/me", { token: bystander.access_token });
    assert.equal(me.status, 200);

    // The username is free again.
    const reuse = await worker.signup({ username: account.username });
    assert.notEqual(reuse.user.id, id);
  });
});

describe("GET /.well-known/jwks.json", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("publishes the signing key as an RFC 8037 OKP key, without its private part, cacheable", async () => {
    const response = await worker.request("GET", "/.well-known/jwks.json");
    assert.equal(response.status, 200, response.text);
    assert.match(response.headers.get("content-type"), /^application\/json/);
    const cacheControl = response.headers.get("cache-control") ?? "";
    assert.match(cacheControl, /\bpublic\b/);
    assert.match(cacheControl, /\bmax-age=\d+/);
    assert.doesNotMatch(cacheControl, /no-store/);
    assertEdgeHeaders(assert, response);

    assert.deepEqual(Object.keys(response.json), ["keys"]);
    assert.equal(response.json.keys.length, 1);
    const [key] = response.json.keys;
    assert.deepEqual(Object.keys(key).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert.equal(key.kty, "OKP");
    assert.equal(key.crv, "Ed25519");
    assert.equal(key.alg, "EdDSA");
    assert.equal(key.use, "sig");
    assert.equal(key.d, undefined);
    assert.match(key.x, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(base64url.decode(key.x).length, 32);
    assert.equal(key.x, publicXFromSeed(worker.seed), "x is the public half of the signing seed");
    assert.ok(!response.text.includes(worker.seed), "the seed is never published");
    assert.equal(key.kid, await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: key.x }));
  });

  test("tokens the Worker issues are EdDSA JWTs naming the published kid", async () => {
    const account = await worker.signup();
    const { keys } = (await worker.request("GET", "/.well-known/jwks.json")).json;
    const header = decodeProtectedHeader(account.access_token);
    assert.equal(header.alg, "EdDSA");
    assert.equal(header.kid, keys[0].kid);
    const claims = decodeJwt(account.access_token);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.aud, AUDIENCE);
    assert.equal(claims.sub, account.user.id);
    assert.equal(claims.exp - claims.iat, account.expires_in);
  });
});

describe("GET /.well-known/jwks.json with JWT_VERIFY_KEYS (key rotation)", () => {
  let worker;
  let previous; // { jwk, kid, key }
  before(async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const jwk = privateKey.export({ format: "jwk" });
    previous = {
      jwk,
      kid: await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: jwk.x }),
      key: await importJWK(jwk, "EdDSA"),
    };
    worker = await startWorker({ vars: { JWT_VERIFY_KEYS: jwk.x } });
  });
  after(() => worker.dispose());

  test("lists the signing key first and the verify-only key after it", async () => {
    const response = await worker.request("GET", "/.well-known/jwks.json");
    assert.equal(response.status, 200, response.text);
    const { keys } = response.json;
    assert.equal(keys.length, 2);
    assert.equal(keys[0].x, publicXFromSeed(worker.seed));
    assert.deepEqual(keys[1], {
      kty: "OKP",
      crv: "Ed25519",
      x: previous.jwk.x,
      kid: previous.kid,
      use: "sig",
      alg: "EdDSA",
    });
    assert.notEqual(keys[0].kid, keys[1].kid);
    assert.ok(keys.every((key) => key.d === undefined));
  });

  test("a token signed by the verify-only key under its thumbprint kid is accepted; new tokens use the signing key", async () => {
    const account = await worker.signup();
    const { keys } = (await worker.request("GET", "/.well-known/jwks.json")).json;
    assert.equal(decodeProtectedHeader(account.access_token).kid, keys[0].kid);

    const session = sessionOf(account.access_token);
    const token = await signToken(claimsFor(session), { key: previous.key, kid: previous.kid });
    const response = await worker.request("GET", "/api/v1/users/me", { token });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.id, session.sub);
    assert.equal(response.json.username, account.username);

    // The same key under the signing key's kid is not accepted: keys are chosen by kid only.
    const wrongKid = await signToken(claimsFor(session), { key: previous.key, kid: keys[0].kid });
    assertUnauthorized(
      assert,
      await worker.request("GET", "/api/v1/users/me", { token: wrongKid }),
      "Invalid token",
    );
  });
});
