// Second factors against the running Worker: enrolling an authenticator app, signing in
// with a code or a recovery code, replays and races, the window's edges, the mfa_token's
// lifetime and its five wrong codes, the lockout, step-up before every sensitive operation,
// the administrator's view and reset, and what reaches the logs and the database.
//
// The codes are computed by an independent TOTP implementation (otplib), for explicit
// moments, never by the service's own code.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { authenticator } from "otplib";
import {
  startWorker,
  assertProblem,
  assertUnauthorized,
  address,
  STRONG_PASSWORD,
  sleep,
} from "./helpers.mjs";

const STEP_MS = 30_000;

/** The code an authenticator app shows at `ms` (unix milliseconds). */
function codeAt(secret, ms) {
  return authenticator.clone({ epoch: ms }).generate(secret);
}

/**
 * A moment well inside a time step (at least 2 s after its start, 4 s before its end), so
 * a code computed here for a step is still of that step when the Worker checks it.
 */
async function steadyNow() {
  for (;;) {
    const into = Date.now() % STEP_MS;
    if (into >= 2_000 && into <= STEP_MS - 4_000) return Date.now();
    await sleep(250);
  }
}

/** The claims of a JWT (its signature is the JWKS suites' business). */
function claims(token) {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString("utf8"));
}

/** Everything secret the suite handled, to look for in the logs at the end. */
const secrets = [];

describe("second factors (TOTP and recovery codes)", () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: { APP_NAME: "Edge Auth Test", LOGIN_LOCKOUT_THRESHOLD: "8", STEP_UP_SECONDS: "600" },
    });
  });
  after(() => worker?.dispose());

  /** Start enrolling `account`: the pending factor's answer. */
  async function startEnrolment(account) {
    const started = await worker.request("POST", "/api/v1/users/me/mfa/totp", { token: account.access_token });
    assert.equal(started.status, 200, started.text);
    secrets.push(started.json.secret);
    return started.json;
  }

  /**
   * A fresh account with an active authenticator app, confirmed with the previous step's
   * code (so the current and the next step are still unused); its secret and codes.
   */
  async function enrolled(overrides = {}) {
    const account = await worker.signup(overrides);
    const { secret } = await startEnrolment(account);
    const now = await steadyNow();
    const confirmed = await worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: account.access_token,
      body: { code: codeAt(secret, now - STEP_MS) },
    });
    assert.equal(confirmed.status, 200, confirmed.text);
    secrets.push(...confirmed.json.recovery_codes);
    return { account, secret, codes: confirmed.json.recovery_codes };
  }

  /** A login with the right password that must answer `mfa_required`; the mfa_token. */
  async function passwordStep(username) {
    const response = await worker.attemptLogin(username);
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.mfa_required, true);
    assert.deepEqual(response.json.factors, ["totp"]);
    assert.equal(response.json.access_token, undefined, "no tokens before the second factor");
    assert.equal(response.json.refresh_token, undefined);
    secrets.push(response.json.mfa_token);
    return response.json.mfa_token;
  }

  function verify(body) {
    return worker.request("POST", "/api/v1/auth/mfa/verify", { body });
  }

  test("enrol, confirm, then a login needs the code and the tokens say aal2", async () => {
    const email = address("ada");
    const account = await worker.signup({ email });
    assert.deepEqual(claims(account.access_token).amr, ["pwd"]);
    assert.equal(claims(account.access_token).aal, "aal1");
    const started = await startEnrolment(account);
    assert.match(started.secret, /^[A-Z2-7]{32}$/);
    assert.match(started.factor_id, /^[0-9a-f-]{36}$/);
    assert.ok(started.otpauth_uri.startsWith("otpauth://totp/Edge%20Auth%20Test:"), started.otpauth_uri);
    assert.ok(started.otpauth_uri.includes(`secret=${started.secret}&issuer=Edge%20Auth%20Test`));
    assert.ok(started.qr_svg.startsWith("<svg "));
    // Pending: the password alone still signs in.
    assert.ok((await worker.login(account.username)).access_token);
    const pending = await worker.request("GET", "/api/v1/users/me/mfa", { token: account.access_token });
    assert.deepEqual(pending.json.factors.map((f) => [f.kind, f.confirmed]), [["totp", false]]);

    const now = await steadyNow();
    const wrong = await worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: account.access_token,
      body: { code: "000000" === codeAt(started.secret, now) ? "111111" : "000000" },
    });
    assertProblem(assert, wrong, 422);
    const confirmed = await worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: account.access_token,
      body: { code: codeAt(started.secret, now) },
    });
    assert.equal(confirmed.status, 200, confirmed.text);
    const codes = confirmed.json.recovery_codes;
    secrets.push(...codes);
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const code of codes) assert.match(code, /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/);
    const active = await worker.request("GET", "/api/v1/users/me/mfa", { token: account.access_token });
    assert.deepEqual(active.json.factors.map((f) => [f.kind, f.confirmed]), [["totp", true]]);
    assert.equal(active.json.recovery_codes_remaining, 10);
    // The session that confirmed proved the factor.
    const row = await worker.sessionRow(claims(account.access_token).sid);
    assert.equal(row.aal, "aal2");
    assert.deepEqual(JSON.parse(row.amr), ["pwd", "otp"]);
    // A second app while one is active: refused.
    const again = await worker.request("POST", "/api/v1/users/me/mfa/totp", { token: account.access_token });
    assert.equal(assertProblem(assert, again, 409).type, "urn:edge-auth:problem:mfa_already_enabled");

    const sessionsBefore = await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id);
    const mfaToken = await passwordStep(email);
    assert.equal(
      await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", account.user.id),
      sessionsBefore,
      "the password step opens no session",
    );
    const next = await steadyNow();
    const signedIn = await verify({ mfa_token: mfaToken, code: codeAt(started.secret, next + STEP_MS) });
    assert.equal(signedIn.status, 200, signedIn.text);
    const token = claims(signedIn.json.access_token);
    assert.deepEqual(token.amr, ["pwd", "otp"]);
    assert.equal(token.aal, "aal2");
    assert.equal(signedIn.json.user.id, account.user.id);
    const stored = await worker.sessionRow(token.sid);
    assert.equal(stored.aal, "aal2");
    assert.ok(Number(stored.aal2_at) > 0);
    // A refresh keeps the session's level.
    const refreshed = await worker.refresh(signedIn.json.refresh_token);
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(claims(refreshed.json.access_token).aal, "aal2");
    assert.deepEqual(claims(refreshed.json.access_token).amr, ["pwd", "otp"]);
    // So does a repeat inside the grace window, which the session's object answers from
    // what it remembers of that rotation.
    const replayed = await worker.refresh(signedIn.json.refresh_token);
    assert.equal(replayed.status, 200, replayed.text);
    assert.equal(replayed.json.refresh_token, refreshed.json.refresh_token, "the same successor");
    assert.equal(claims(replayed.json.access_token).aal, "aal2");
    assert.deepEqual(claims(replayed.json.access_token).amr, ["pwd", "otp"]);
    // And the chain's next rotation.
    const following = await worker.refresh(refreshed.json.refresh_token);
    assert.equal(following.status, 200, following.text);
    assert.equal(claims(following.json.access_token).aal, "aal2");
    assert.deepEqual(claims(following.json.access_token).amr, ["pwd", "otp"]);
  });

  test("a new enrolment replaces a pending one; the secret at rest is sealed", async () => {
    const account = await worker.signup();
    const first = await startEnrolment(account);
    const second = await startEnrolment(account);
    const rows = await worker.db.query("SELECT * FROM mfa_factors WHERE user_id = ?1", account.user.id);
    assert.equal(rows.length, 1);
    assert.equal(String(rows[0].id), second.factor_id);
    assert.equal(rows[0].confirmed_at, null);
    const sealed = rows[0].secret;
    assert.match(sealed, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    for (const plain of [first.secret, second.secret]) {
      assert.ok(!sealed.includes(plain), "not the base32 secret");
      assert.ok(!sealed.includes(Buffer.from(plain).toString("base64url")), "not merely encoded");
    }
    const { account: active, codes } = await enrolled();
    const stored = await worker.db.query("SELECT digest FROM recovery_codes WHERE user_id = ?1", active.user.id);
    assert.equal(stored.length, 10);
    for (const code of codes) {
      assert.ok(!stored.some((row) => row.digest.includes(code.replaceAll("-", ""))), "codes stored as digests");
    }
  });

  test("an accepted code is refused again, and of two concurrent verifies with one code exactly one passes", async () => {
    const { account, secret } = await enrolled();
    const first = await passwordStep(account.username);
    const second = await passwordStep(account.username);
    const now = await steadyNow();
    const code = codeAt(secret, now);
    assert.equal((await verify({ mfa_token: first, code })).status, 200);
    assertUnauthorized(assert, await verify({ mfa_token: second, code }), "Invalid code");

    const racers = [await passwordStep(account.username), await passwordStep(account.username)];
    const next = codeAt(secret, (await steadyNow()) + STEP_MS);
    const answers = await Promise.all(racers.map((mfaToken) => verify({ mfa_token: mfaToken, code: next })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 401]);
  });

  test("the window: one step either side passes, two steps away does not", async () => {
    const account = await worker.signup();
    const { secret } = await startEnrolment(account);
    const now = await steadyNow();
    const confirm = (ms) =>
      worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
        token: account.access_token,
        body: { code: codeAt(secret, ms) },
      });
    // Two steps back and two ahead: refused (unless one happens to equal an accepted code).
    const current = codeAt(secret, now);
    for (const offset of [-2, 2]) {
      if (codeAt(secret, now + offset * STEP_MS) === current) continue;
      assertProblem(assert, await confirm(now + offset * STEP_MS), 422);
    }
    // The previous step: accepted.
    assert.equal((await confirm(now - STEP_MS)).status, 200);
    // On sign-in, the next step passes; two ahead does not (and costs one attempt only).
    const mfaToken = await passwordStep(account.username);
    const twoAhead = codeAt(secret, now + 2 * STEP_MS);
    if (twoAhead !== codeAt(secret, now + STEP_MS)) {
      assertUnauthorized(assert, await verify({ mfa_token: mfaToken, code: twoAhead }), "Invalid code");
    }
    assert.equal((await verify({ mfa_token: mfaToken, code: codeAt(secret, now + STEP_MS) })).status, 200);
  });

  test("a recovery code signs in once, however it is typed", async () => {
    const { account, codes } = await enrolled();
    const signedIn = await verify({ mfa_token: await passwordStep(account.username), recovery_code: codes[0].toUpperCase() });
    assert.equal(signedIn.status, 200, signedIn.text);
    assert.deepEqual(claims(signedIn.json.access_token).amr, ["pwd", "otp"]);
    assert.equal(claims(signedIn.json.access_token).aal, "aal2");
    const status = await worker.request("GET", "/api/v1/users/me/mfa", { token: signedIn.json.access_token });
    assert.equal(status.json.recovery_codes_remaining, 9);
    const again = await verify({ mfa_token: await passwordStep(account.username), recovery_code: codes[0] });
    assertUnauthorized(assert, again, "Invalid code");
  });

  test("the mfa_token: single use, five minutes, five wrong codes", async () => {
    const { account, secret } = await enrolled();
    // Exactly one of code and recovery_code.
    const mfaToken = await passwordStep(account.username);
    assertProblem(assert, await verify({ mfa_token: mfaToken, code: "123456", recovery_code: "x" }), 422);
    assertProblem(assert, await verify({ mfa_token: mfaToken }), 422);
    // Four wrong codes are forgiven; the fifth spends the token, and the right code then fails.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      assertUnauthorized(assert, await verify({ mfa_token: mfaToken, code: "abcdef" }), "Invalid code");
    }
    const now = await steadyNow();
    const spent = await verify({ mfa_token: mfaToken, code: codeAt(secret, now) });
    assert.match(assertUnauthorized(assert, spent).detail, /expired or was already completed/);
    // Used once: spent.
    const once = await passwordStep(account.username);
    assert.equal((await verify({ mfa_token: once, code: codeAt(secret, now) })).status, 200);
    assert.equal((await verify({ mfa_token: once, code: codeAt(secret, now + STEP_MS) })).status, 401);
    // Expired: refused even with the right code.
    const late = await passwordStep(account.username);
    const digest = createHash("sha256").update(late).digest("hex");
    await worker.db.run("UPDATE oauth_grants SET expires_at = 1 WHERE digest = ?1", digest);
    assert.equal((await verify({ mfa_token: late, code: codeAt(secret, now + STEP_MS) })).status, 401);
    // Forged: refused.
    assert.equal((await verify({ mfa_token: "not-a-token", code: "123456" })).status, 401);
  });

  test("wrong codes count as failed logins of the account, up to its lockout", async () => {
    const { account, secret } = await enrolled();
    const first = await passwordStep(account.username);
    for (let attempt = 0; attempt < 5; attempt += 1) await verify({ mfa_token: first, code: "999999" });
    const second = await passwordStep(account.username);
    for (let attempt = 0; attempt < 2; attempt += 1) await verify({ mfa_token: second, code: "999999" });
    // The eighth failure locks the account: even the right code is refused now.
    const last = await verify({ mfa_token: second, code: "999999" });
    assert.equal(last.status, 401);
    const locked = await verify({ mfa_token: second, code: codeAt(secret, await steadyNow()) });
    assert.equal(assertProblem(assert, locked, 429).type, "urn:edge-auth:problem:login_locked");
    assertProblem(assert, await worker.attemptLogin(account.username), 429);
    const events = worker.events().filter((event) => event.event === "login_locked");
    assert.ok(events.length > 0, "the lockout is logged");
  });

  test("with a factor, sensitive operations need a recent step-up; after one they pass", async () => {
    const email = address("stepup");
    const account = await worker.signup({ email });
    // A second device signed in before the factor existed: its session stays aal1.
    const other = await worker.login(account.username);
    const { secret } = await startEnrolment(account);
    const now = await steadyNow();
    const confirmed = await worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: account.access_token,
      body: { code: codeAt(secret, now - STEP_MS) },
    });
    assert.equal(confirmed.status, 200);
    secrets.push(...confirmed.json.recovery_codes);
    const token = other.access_token;
    const stepUpNeeded = (response, what) => {
      const body = assertProblem(assert, response, 403);
      assert.equal(body.type, "urn:edge-auth:problem:step_up_required", what);
    };
    const newEmail = address("moved");
    const operations = {
      "password change": () =>
        worker.request("POST", "/api/v1/auth/password/change", {
          token,
          body: { current_password: STRONG_PASSWORD, new_password: "another long passphrase" },
        }),
      "email change": () =>
        worker.request("PATCH", "/api/v1/users/me", {
          token,
          body: { email: newEmail, current_password: STRONG_PASSWORD },
        }),
      "new recovery codes": () => worker.request("POST", "/api/v1/users/me/mfa/recovery-codes", { token }),
      "removing the factor": () => worker.request("DELETE", "/api/v1/users/me/mfa/totp", { token }),
      "deleting the account": () =>
        worker.request("DELETE", "/api/v1/users/me", { token, body: { password: STRONG_PASSWORD } }),
    };
    for (const [what, run] of Object.entries(operations)) stepUpNeeded(await run(), what);
    // A username change is not sensitive.
    assert.equal((await worker.request("PATCH", "/api/v1/users/me", { token, body: {} })).status, 200);

    const wrong = await worker.request("POST", "/api/v1/auth/mfa/step-up", { token, body: { code: "000000" } });
    assertProblem(assert, wrong, 422);
    const raised = await worker.request("POST", "/api/v1/auth/mfa/step-up", {
      token,
      body: { code: codeAt(secret, now) },
    });
    assert.equal(raised.status, 200, raised.text);
    assert.equal(raised.json.refresh_token, undefined, "the session keeps its refresh token");
    const fresh = claims(raised.json.access_token);
    assert.equal(fresh.aal, "aal2");
    assert.equal(fresh.sid, claims(token).sid, "the same session");
    const regenerated = await operations["new recovery codes"]();
    assert.equal(regenerated.status, 200, regenerated.text);
    secrets.push(...regenerated.json.recovery_codes);
    assert.equal(regenerated.json.recovery_codes.length, 10);
    assert.equal((await operations["email change"]()).status, 200);
    assert.equal((await operations["password change"]()).status, 200);
    assert.equal((await operations["removing the factor"]()).status, 204);
    // Without a factor, the password alone signs in again.
    const plain = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: "another long passphrase" },
    });
    assert.ok(plain.json.access_token);
    assert.equal((await operations["deleting the account"]()).status, 422, "the password changed");
    const deleted = await worker.request("DELETE", "/api/v1/users/me", {
      token,
      body: { password: "another long passphrase" },
    });
    assert.equal(deleted.status, 204);
    const audit = await worker.db.query(
      "SELECT action FROM audit_log WHERE target_id = ?1 AND action LIKE 'mfa.%' ORDER BY id",
      account.user.id,
    );
    assert.deepEqual(
      audit.map((row) => row.action),
      ["mfa.totp_enrolled", "mfa.recovery_codes_regenerated", "mfa.totp_removed"],
    );
    // Without a factor there is nothing to step up with.
    const none = await worker.signup();
    assertProblem(
      assert,
      await worker.request("POST", "/api/v1/auth/mfa/step-up", { token: none.access_token, body: { code: "123456" } }),
      404,
    );
  });

  test("an administrator with a factor steps up first; admins list and reset a user's factors", async () => {
    const admin = await worker.admin();
    const adminOther = await worker.login(admin.username);
    const { secret } = await startEnrolment(admin);
    const now = await steadyNow();
    const confirmed = await worker.request("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: admin.access_token,
      body: { code: codeAt(secret, now - STEP_MS) },
    });
    assert.equal(confirmed.status, 200);
    const adminCodes = confirmed.json.recovery_codes;
    secrets.push(...adminCodes);
    const refused = await worker.request("GET", "/api/v1/admin/users", { token: adminOther.access_token });
    assert.equal(assertProblem(assert, refused, 403).type, "urn:edge-auth:problem:step_up_required");
    // The confirming session proved the factor a moment ago.
    assert.equal((await worker.request("GET", "/api/v1/admin/users", { token: admin.access_token })).status, 200);
    const raised = await worker.request("POST", "/api/v1/auth/mfa/step-up", {
      token: adminOther.access_token,
      body: { recovery_code: adminCodes[0] },
    });
    assert.equal(raised.status, 200, raised.text);
    const token = raised.json.access_token;
    assert.equal((await worker.request("GET", "/api/v1/admin/users", { token })).status, 200);

    const { account: target } = await enrolled();
    const listed = await worker.request("GET", `/api/v1/admin/users/${target.user.id}/mfa`, { token });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.factors.map((f) => [f.kind, f.confirmed]), [["totp", true]]);
    assert.equal(listed.json.recovery_codes_remaining, 10);
    assert.equal((await worker.request("DELETE", `/api/v1/admin/users/${target.user.id}/mfa`, { token })).status, 204);
    assert.equal((await worker.request("DELETE", `/api/v1/admin/users/${target.user.id}/mfa`, { token })).status, 404);
    assert.ok((await worker.login(target.username)).access_token, "the password alone again");
    const entry = await worker.db.first(
      "SELECT actor_id, action FROM audit_log WHERE target_id = ?1 AND action = 'mfa.reset'",
      target.user.id,
    );
    assert.equal(String(entry.actor_id), admin.user.id);
    // users:write is needed to reset; a plain user has neither.
    const user = await worker.signup();
    assertProblem(
      assert,
      await worker.request("GET", `/api/v1/admin/users/${target.user.id}/mfa`, { token: user.access_token }),
      403,
    );
  });

  test("metrics count second-factor checks by factor and result", async () => {
    const scraped = await worker.send("/metrics");
    assert.equal(scraped.status, 200);
    assert.match(scraped.text, /# TYPE edge_auth_mfa_total counter/);
  });

  test("no log line carries a TOTP secret, a code, a recovery code or an mfa_token", () => {
    const logs = worker.logs.join("\n");
    assert.ok(secrets.length > 30, "the suite handled secrets");
    for (const secret of secrets) {
      assert.ok(!logs.includes(secret), "a secret reached the logs");
      assert.ok(!logs.includes(secret.replaceAll("-", "")), "a recovery code reached the logs");
    }
    // Six-digit codes: never as a value of any field.
    for (const event of worker.events()) {
      for (const value of Object.values(event)) {
        if (typeof value === "string") assert.doesNotMatch(value, /^\d{6}$/, JSON.stringify(event));
      }
    }
  });
});
