// The OpenAPI document against the running Worker: every documented path is routed with
// exactly its documented methods, the examples work as real requests, and a tour of every
// operation validates each body the Worker sends against the documented schema — strictly,
// so an undocumented or missing member fails.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { startWorker, uniqueName, address, STRONG_PASSWORD } from "./helpers.mjs";
import { startGithubStandIn } from "./providers.mjs";
import { authenticator } from "otplib";
import { softAuthenticator } from "./webauthn.mjs";

const METHODS = ["get", "put", "post", "delete", "patch"];
/** Where provider sign-ins in the tour send the browser back (ALLOWED_REDIRECT_URLS). */
const APP_DONE = "https://app.test/done";

/** Make every object schema with named properties refuse members it does not name. */
function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== "object") return schema;
  const copy = Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, strict(value)]));
  if (copy.properties && copy.additionalProperties === undefined) copy.additionalProperties = false;
  return copy;
}

/** Validates real responses against the document and remembers which it has seen. */
class Checker {
  constructor(document) {
    this.document = document;
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addFormat("password", true);
    this.ajv.addSchema({ components: strict(document.components) }, "doc");
    this.seen = new Set();
  }

  operation(method, template) {
    const operation = this.document.paths[template]?.[method.toLowerCase()];
    assert.ok(operation, `${method} ${template} is documented`);
    return operation;
  }

  /** Check one response to `method template`; returns it. */
  check(method, template, response) {
    const operation = this.operation(method, template);
    let documented = operation.responses[String(response.status)];
    assert.ok(documented, `${method} ${template} documents status ${response.status}: ${response.text}`);
    if (documented.$ref) documented = this.document.components.responses[documented.$ref.split("/").pop()];
    const type = (response.headers.get("content-type") ?? "").split(";")[0];
    if (!documented.content) {
      assert.equal(response.text, "", `${method} ${template} ${response.status} has no body`);
    } else {
      const media = documented.content[type] ?? documented.content["*/*"];
      assert.ok(media, `${method} ${template} ${response.status} documents ${type}`);
      const schema = media.schema;
      if (schema && type.endsWith("json")) {
        const validate = this.ajv.compile(this.rebase(schema));
        assert.ok(
          validate(response.json),
          `${method} ${template} ${response.status}: ${this.ajv.errorsText(validate.errors)}\n${response.text}`,
        );
      }
    }
    this.seen.add(`${method.toUpperCase()} ${template} ${response.status}`);
    return response;
  }

  /** Point the document's `#/components/...` references into the registered copy. */
  rebase(schema) {
    return strict(JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/')));
  }
}

describe("the OpenAPI document", () => {
  let worker;
  let github;
  let document;
  let checker;
  before(async () => {
    // GitHub (through its stand-in) as a sign-in provider, so the tour reaches those routes.
    github = await startGithubStandIn({ client_id: "tour-client", client_secret: "tour-secret" });
    worker = await startWorker({
      vars: {
        ENVIRONMENT: "development",
        PUBLIC_BASE_URL: "https://auth.test",
        OAUTH_PROVIDERS: "github",
        OAUTH_GITHUB_CLIENT_ID: "tour-client",
        OAUTH_GITHUB_CLIENT_SECRET: "tour-secret",
        OAUTH_GITHUB_WEB_URL: github.web,
        OAUTH_GITHUB_API_URL: github.api,
        ALLOWED_REDIRECT_URLS: APP_DONE,
      },
    });
    const response = await worker.request("GET", "/openapi.json");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    document = response.json;
    checker = new Checker(document);
  });
  after(async () => {
    await worker.dispose();
    await github.close();
  });

  /** Call `method template` with path `params` and validate the answer. */
  async function call(method, template, { params = {}, query = "", ...init } = {}) {
    const path = template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(params[name]));
    const response = await worker.request(method, path + query, init);
    return checker.check(method, template, response);
  }

  test("is OpenAPI 3.1 with a bearer scheme, problem details and compiling schemas", () => {
    assert.match(document.openapi, /^3\.1\./);
    assert.deepEqual(document.components.securitySchemes.bearerAuth, {
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
      description: "The `access_token` of a token response (a JWT signed with `JWT_ALGORITHM`: EdDSA, ES256 or RS256).",
    });
    const problem = document.components.schemas.ProblemDetails;
    assert.deepEqual(problem.required.sort(), ["detail", "request_id", "status", "title", "type"]);
    for (const name of Object.keys(document.components.schemas)) {
      checker.ajv.compile({ $ref: `doc#/components/schemas/${name}` });
    }
    assert.ok(Object.keys(document.paths).length >= 30);
  });

  test("every documented path is routed with exactly its documented methods", async () => {
    for (const [template, item] of Object.entries(document.paths)) {
      const path = template.replace(/\{(\w+)\}/g, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
      const response = await worker.request("OPTIONS", path);
      assert.equal(response.status, 204, `OPTIONS ${path}`);
      const allowed = response.headers
        .get("allow")
        .split(", ")
        .filter((method) => !["HEAD", "OPTIONS"].includes(method))
        .map((method) => method.toLowerCase())
        .sort();
      const documented = METHODS.filter((method) => item[method]).sort();
      assert.deepEqual(allowed, documented, template);
    }
    // A path the document does not have is not routed either.
    const unknown = await worker.request("OPTIONS", "/api/v1/auth/nowhere");
    assert.equal(unknown.status, 404);
  });

  test("the examples are real requests", async () => {
    const signup = document.components.schemas.SignupRequest.example;
    const created = await call("POST", "/api/v1/auth/signup", { body: signup });
    assert.equal(created.status, 201);
    assert.equal(created.json.user.username, signup.username);
    const login = await call("POST", "/api/v1/auth/login", {
      body: document.components.schemas.LoginRequest.example,
    });
    assert.equal(login.status, 200);
    const update = await call("PATCH", "/api/v1/users/me", {
      body: document.components.schemas.ProfileUpdate.example,
      token: login.json.access_token,
    });
    assert.equal(update.status, 200);
    assert.equal(update.json.username, "ada_king");
    // The refresh example is a made-up token: the documented 401, as a problem.
    const refresh = await call("POST", "/api/v1/auth/refresh", {
      body: document.components.schemas.RefreshRequest.example,
    });
    assert.equal(refresh.status, 401);
    assert.equal(refresh.json.type, "urn:edge-auth:problem:unauthorized");
  });

  test("a tour of every operation matches the documented schemas", async () => {
    const outbox = async (to, purpose) => {
      const messages = (await call("GET", "/api/v1/dev/outbox", { query: `?to=${encodeURIComponent(to)}` })).json;
      return messages.find((message) => message.purpose === purpose);
    };
    for (const template of ["/api/ping", "/api/health", "/health", "/.well-known/jwks.json", "/openapi.json"]) {
      assert.equal((await call("GET", template)).status, 200, template);
    }
    assert.match((await call("GET", "/metrics")).text, /^# HELP edge_auth_/m);
    assert.match((await call("GET", "/docs")).text, /swagger-ui-bundle\.js/);
    assert.match((await call("GET", "/docs/{file}", { params: { file: "init.js" } })).text, /SwaggerUIBundle/);
    assert.equal((await call("GET", "/docs/{file}", { params: { file: "missing.js" } })).status, 404);
    assert.match((await call("GET", "/redoc")).text, /spec-url="\/openapi.json"/);
    assert.equal((await call("GET", "/redoc/{file}", { params: { file: "redoc.standalone.js" } })).status, 200);
    assert.ok((await call("GET", "/api/v1/dev/memory")).json.wasm_memory_bytes >= 65536);
    const hashed = await call("GET", "/api/v1/dev/argon2");
    assert.deepEqual(hashed.json, { algorithm: "argon2id", memory_kib: 19456, iterations: 2, parallelism: 1 });

    // The signed-in account, its profile and sessions.
    const email = address("tour");
    const username = uniqueName("tour");
    const account = (await call("POST", "/api/v1/auth/signup", { body: { username, email, password: STRONG_PASSWORD } })).json;
    const token = account.access_token;
    assert.equal((await call("POST", "/api/v1/auth/signup", { body: { username, password: STRONG_PASSWORD } })).status, 409);
    assert.equal((await call("POST", "/api/v1/auth/signup", { body: { username: "x" } })).status, 422);
    assert.equal((await call("POST", "/api/v1/auth/signup", { body: "{" })).status, 400);
    assert.equal((await call("GET", "/api/v1/users/me", { token })).status, 200);
    assert.equal((await call("GET", "/api/v1/users/me")).status, 401);
    assert.equal((await call("PUT", "/api/v1/users/me", { token, body: { username: `${username}_2` } })).status, 200);
    const second = (await call("POST", "/api/v1/auth/login", { body: { username: email, password: STRONG_PASSWORD } })).json;
    const sessions = (await call("GET", "/api/v1/auth/sessions", { token })).json.sessions;
    assert.equal(sessions.filter((session) => session.current).length, 1);
    const other = sessions.find((session) => !session.current);
    assert.equal((await call("DELETE", "/api/v1/auth/sessions/{id}", { token, params: { id: other.id } })).status, 204);
    assert.equal((await call("DELETE", "/api/v1/auth/sessions/{id}", { token, params: { id: other.id } })).status, 404);
    assert.equal((await call("POST", "/api/v1/auth/refresh", { body: { refresh_token: second.refresh_token } })).status, 401);
    const refreshed = (await call("POST", "/api/v1/auth/refresh", { body: { refresh_token: account.refresh_token } })).json;
    const changed = await call("POST", "/api/v1/auth/password/change", {
      token: refreshed.access_token,
      body: { current_password: STRONG_PASSWORD, new_password: "another long passphrase" },
    });
    assert.equal(changed.status, 200);

    // Email flows, through the development outbox.
    assert.equal((await call("POST", "/api/v1/auth/verify-email/resend", { body: { email } })).status, 202);
    const verification = await outbox(email, "verify_email");
    assert.equal((await call("GET", "/verify-email", { query: `?token=${verification.token}` })).status, 200);
    assert.equal((await call("POST", "/api/v1/auth/verify-email", { body: { token: verification.token } })).status, 200);
    assert.equal((await call("POST", "/api/v1/auth/verify-email", { body: { token: verification.token } })).status, 422);
    const newEmail = address("moved");
    await call("PATCH", "/api/v1/users/me", {
      token: refreshed.access_token,
      body: { email: newEmail, current_password: "another long passphrase" },
    });
    const change = await outbox(newEmail, "change_email");
    assert.equal((await call("GET", "/confirm-email", { query: `?token=${change.token}` })).status, 200);
    assert.equal((await call("POST", "/api/v1/auth/email/confirm", { body: { token: change.token } })).status, 200);
    assert.equal((await call("POST", "/api/v1/auth/password/reset", { body: { email: newEmail } })).status, 202);
    const reset = await outbox(newEmail, "reset_password");
    assert.equal((await call("GET", "/reset-password", { query: `?token=${reset.token}` })).status, 200);
    const confirmed = await call("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token: reset.token, new_password: STRONG_PASSWORD },
    });
    assert.equal(confirmed.status, 200);

    // The HTML forms post back as forms.
    const form = (body) => ({ body, headers: { "content-type": "application/x-www-form-urlencoded" } });
    for (const template of ["/verify-email", "/reset-password", "/confirm-email"]) {
      const spent = await call("POST", template, form("token=spent&new_password=whatever+long+enough"));
      assert.equal(spent.status, 422, template);
    }
    const pageEmail = address("page");
    const pageAccount = await worker.signup({ email: pageEmail });
    const pageVerify = await outbox(pageEmail, "verify_email");
    assert.equal((await call("POST", "/verify-email", form(`token=${pageVerify.token}`))).status, 200);
    const pageMoved = address("page");
    await call("PATCH", "/api/v1/users/me", {
      token: pageAccount.access_token,
      body: { email: pageMoved, current_password: STRONG_PASSWORD },
    });
    const pageChange = await outbox(pageMoved, "change_email");
    assert.equal((await call("POST", "/confirm-email", form(`token=${pageChange.token}`))).status, 200);
    await call("POST", "/api/v1/auth/password/reset", { body: { email: pageMoved } });
    const pageReset = await outbox(pageMoved, "reset_password");
    const pageResetForm = form(`token=${pageReset.token}&new_password=${encodeURIComponent(STRONG_PASSWORD)}`);
    assert.equal((await call("POST", "/reset-password", pageResetForm)).status, 200);
    await call("POST", "/api/v1/auth/password/reset", { body: { username: "nobody_at_all" } });
    const renewed = (await call("POST", "/api/v1/auth/login", { body: { username: newEmail, password: STRONG_PASSWORD } })).json;

    // Administration, by an admin, on that account.
    const admin = await worker.admin();
    const id = renewed.user.id;
    const as = { token: admin.access_token, params: { id } };
    assert.equal((await call("GET", "/api/v1/admin/users", { token: admin.access_token, query: "?per_page=5" })).status, 200);
    assert.equal((await call("GET", "/api/v1/admin/users", { token: renewed.access_token })).status, 403);
    assert.equal((await call("GET", "/api/v1/admin/users/{id}", as)).status, 200);
    assert.equal((await call("PATCH", "/api/v1/admin/users/{id}", { ...as, body: { email_verified: true } })).status, 200);
    assert.equal((await call("PUT", "/api/v1/admin/users/{id}", { ...as, body: { username: uniqueName("renamed") } })).status, 200);
    assert.equal((await call("GET", "/api/v1/admin/roles", { token: admin.access_token })).status, 200);
    assert.equal((await call("POST", "/api/v1/admin/users/{id}/roles", { ...as, body: { role: "admin" } })).status, 201);
    assert.equal((await call("POST", "/api/v1/admin/users/{id}/roles", { ...as, body: { role: "admin" } })).status, 200);
    const role = { token: admin.access_token, params: { id, role: "admin" } };
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}/roles/{role}", role)).status, 200);
    const sessionList = (await call("GET", "/api/v1/admin/users/{id}/sessions", as)).json.sessions;
    assert.ok(sessionList.length >= 1);
    const sid = sessionList[0].id;
    assert.equal(
      (await call("DELETE", "/api/v1/admin/users/{id}/sessions/{sid}", { token: admin.access_token, params: { id, sid } })).status,
      204,
    );
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}/sessions", as)).status, 200);
    const banned = await call("POST", "/api/v1/admin/users/{id}/ban", { ...as, body: { reason: "tour" } });
    assert.equal(banned.json.banned, true);
    const until = new Date(Date.now() + 3_600_000).toISOString();
    assert.equal((await call("PUT", "/api/v1/admin/users/{id}/ban", { ...as, body: { until } })).status, 200);
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}/ban", as)).status, 200);
    assert.equal((await call("GET", "/api/v1/admin/audit", { token: admin.access_token, query: "?per_page=50" })).status, 200);
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}", as)).status, 204);
    assert.equal((await call("GET", "/api/v1/admin/users/{id}", as)).status, 404);

    // Signing in through a provider, then linking one to a password account.
    const provider = { provider: "github" };
    const throughGithub = async (startPath, template, params) => {
      const started = await call("GET", template, { params, query: startPath });
      assert.equal(started.status, 302);
      const cookie = started.headers.get("set-cookie").split(";")[0];
      const back = new URL(await github.drive(started.headers.get("location")));
      const returned = await call("GET", "/api/v1/auth/oauth/{provider}/callback", {
        params: provider,
        query: back.search,
        headers: { cookie },
      });
      assert.equal(returned.status, 302);
      return new URL(returned.headers.get("location")).searchParams.get("code");
    };
    github.user = { id: 7001, login: "tour-octocat", name: "Tour" };
    const code = await throughGithub(
      `?redirect_to=${encodeURIComponent(APP_DONE)}`,
      "/api/v1/auth/oauth/{provider}/start",
      provider,
    );
    const viaGithub = await call("POST", "/api/v1/auth/oauth/exchange", { body: { code } });
    assert.equal(viaGithub.status, 200);
    assert.equal((await call("POST", "/api/v1/auth/oauth/exchange", { body: { code } })).status, 400);
    const own = (await call("GET", "/api/v1/users/me/identities", { token: viaGithub.json.access_token })).json;
    assert.equal(own.identities.length, 1);
    const lastWay = { token: viaGithub.json.access_token, params: { id: own.identities[0].id } };
    assert.equal((await call("DELETE", "/api/v1/users/me/identities/{id}", lastWay)).status, 409);
    const linker = await worker.signup();
    const ticket = await call("POST", "/api/v1/users/me/identities/{provider}/start", {
      token: linker.access_token,
      params: provider,
      body: { redirect_to: APP_DONE },
    });
    assert.equal(ticket.status, 200);
    github.user = { id: 7002, login: "tour-linker", name: "Linker" };
    const linkUrl = new URL(ticket.json.url);
    const linkCode = await throughGithub(linkUrl.search, "/api/v1/auth/oauth/{provider}/start", provider);
    const linked = await call("POST", "/api/v1/users/me/identities", {
      token: linker.access_token,
      body: { code: linkCode },
    });
    assert.equal(linked.status, 201);
    const adminView = await call("GET", "/api/v1/admin/users/{id}/identities", {
      token: admin.access_token,
      params: { id: linker.user.id },
    });
    assert.deepEqual(adminView.json.identities.map((identity) => identity.id), [linked.json.id]);
    const unlink = { token: linker.access_token, params: { id: linked.json.id } };
    assert.equal((await call("DELETE", "/api/v1/users/me/identities/{id}", unlink)).status, 204);
    assert.equal((await call("DELETE", "/api/v1/users/me/identities/{id}", unlink)).status, 404);

    // Second factors: enrol, confirm, sign in with a code, step up, recovery codes, and an
    // administrator's view and reset.
    const mfaUser = await worker.signup();
    const mfaOther = await worker.login(mfaUser.username);
    const enrolment = await call("POST", "/api/v1/users/me/mfa/totp", { token: mfaUser.access_token });
    assert.equal(enrolment.status, 200);
    const totpAt = (ms) => authenticator.clone({ epoch: ms }).generate(enrolment.json.secret);
    // Well inside a 30-second step, so each code is still of its step when checked.
    while (Date.now() % 30_000 < 2_000 || Date.now() % 30_000 > 26_000) await new Promise((done) => setTimeout(done, 250));
    const t = Date.now();
    const confirmedTotp = await call("POST", "/api/v1/users/me/mfa/totp/confirm", {
      token: mfaUser.access_token,
      body: { code: totpAt(t - 30_000) },
    });
    assert.equal(confirmedTotp.status, 200);
    assert.equal((await call("GET", "/api/v1/users/me/mfa", { token: mfaUser.access_token })).status, 200);
    const mfaLogin = await call("POST", "/api/v1/auth/login", {
      body: { username: mfaUser.username, password: STRONG_PASSWORD },
    });
    assert.equal(mfaLogin.json.mfa_required, true);
    const mfaSignedIn = await call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: mfaLogin.json.mfa_token, code: totpAt(t) },
    });
    assert.equal(mfaSignedIn.status, 200);
    assert.equal((await call("POST", "/api/v1/users/me/mfa/recovery-codes", { token: mfaOther.access_token })).status, 403);
    const steppedUp = await call("POST", "/api/v1/auth/mfa/step-up", {
      token: mfaOther.access_token,
      body: { recovery_code: confirmedTotp.json.recovery_codes[0] },
    });
    assert.equal(steppedUp.status, 200);
    const renewedCodes = await call("POST", "/api/v1/users/me/mfa/recovery-codes", { token: steppedUp.json.access_token });
    assert.equal(renewedCodes.status, 200);
    const mfaAs = { token: admin.access_token, params: { id: mfaUser.user.id } };
    assert.equal((await call("GET", "/api/v1/admin/users/{id}/mfa", mfaAs)).status, 200);
    assert.equal((await call("DELETE", "/api/v1/users/me/mfa/totp", { token: steppedUp.json.access_token })).status, 204);
    assert.equal((await call("POST", "/api/v1/users/me/mfa/totp", { token: mfaUser.access_token })).status, 200);
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}/mfa", mfaAs)).status, 204);
    assert.equal((await call("DELETE", "/api/v1/admin/users/{id}/mfa", mfaAs)).status, 404);

    // Passkeys (PUBLIC_BASE_URL is the relying party): the page, then a passkey registered with
    // a software authenticator, a sign-in with it, and its management.
    assert.match((await call("GET", "/account")).text, /account\.js/);
    assert.match((await call("GET", "/account/{file}", { params: { file: "account.js" } })).text, /navigator\.credentials/);
    const keyholder = await worker.signup();
    const device = softAuthenticator({ origin: "https://auth.test" });
    const creation = await call("POST", "/api/v1/users/me/passkeys/options", { token: keyholder.access_token });
    assert.equal(creation.json.rp.id, "auth.test");
    const registered = await call("POST", "/api/v1/users/me/passkeys", {
      token: keyholder.access_token,
      body: { name: "Tour key", response: device.create(creation.json) },
    });
    assert.equal(registered.status, 201, registered.text);
    const requestOptions = await call("POST", "/api/v1/auth/passkey/options");
    const passkeyLogin = await call("POST", "/api/v1/auth/passkey/verify", { body: { response: device.get(requestOptions.json) } });
    assert.equal(passkeyLogin.status, 200, passkeyLogin.text);
    assert.equal(passkeyLogin.json.user.id, keyholder.user.id);
    // The passkey is the account's second factor now: after the password, and for step-up.
    const keyholderLogin = await call("POST", "/api/v1/auth/login", {
      body: { username: keyholder.username, password: STRONG_PASSWORD },
    });
    assert.deepEqual(keyholderLogin.json.factors, ["passkey"]);
    const factorOptions = await call("POST", "/api/v1/auth/mfa/passkey/options", {
      body: { mfa_token: keyholderLogin.json.mfa_token },
    });
    const viaPasskey = await call("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: keyholderLogin.json.mfa_token, passkey: device.get(factorOptions.json) },
    });
    assert.equal(viaPasskey.status, 200, viaPasskey.text);
    const stepUpOptions = await call("POST", "/api/v1/auth/mfa/step-up/options", { token: keyholder.access_token });
    const keySteppedUp = await call("POST", "/api/v1/auth/mfa/step-up", {
      token: keyholder.access_token,
      body: { passkey: device.get(stepUpOptions.json) },
    });
    assert.equal(keySteppedUp.status, 200, keySteppedUp.text);
    const ownKey = { token: passkeyLogin.json.access_token, params: { id: registered.json.id } };
    const renamedKey = await call("PATCH", "/api/v1/users/me/passkeys/{id}", { ...ownKey, body: { name: "Renamed" } });
    assert.equal(renamedKey.json.name, "Renamed");
    const keys = await call("GET", "/api/v1/users/me/passkeys", { token: keyholder.access_token });
    assert.deepEqual(keys.json.passkeys.map((passkey) => passkey.name), ["Renamed"]);
    const adminKeys = await call("GET", "/api/v1/admin/users/{id}/passkeys", { token: admin.access_token, params: { id: keyholder.user.id } });
    assert.equal(adminKeys.json.passkeys.length, 1);
    assert.equal((await call("DELETE", "/api/v1/users/me/passkeys/{id}", ownKey)).status, 204);
    assert.equal((await call("DELETE", "/api/v1/users/me/passkeys/{id}", ownKey)).status, 404);

    // The signed-in account leaves.
    const leaving = await worker.signup();
    assert.equal((await call("POST", "/api/v1/auth/logout", { token: leaving.access_token })).status, 204);
    const again = await worker.login(leaving.username);
    assert.equal((await call("POST", "/api/v1/auth/logout-all", { token: again.access_token })).status, 204);
    const last = await worker.login(leaving.username);
    assert.equal((await call("DELETE", "/api/v1/users/me", { token: last.access_token, body: { password: STRONG_PASSWORD } })).status, 204);

    // Every operation had its success answer checked.
    for (const [template, item] of Object.entries(document.paths)) {
      for (const method of METHODS.filter((name) => item[name])) {
        // A browser endpoint's success is a redirect (a provider sign-in's start and callback).
        const successes = Object.keys(item[method].responses).filter((status) => /^[23]/.test(status));
        assert.ok(
          successes.some((status) => checker.seen.has(`${method.toUpperCase()} ${template} ${status}`)),
          `the tour checked a success of ${method.toUpperCase()} ${template}`,
        );
      }
    }
  });
});
