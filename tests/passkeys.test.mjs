// Passkeys end to end: the account page (/account) in real Chromium with a CDP virtual
// authenticator (CTAP2, internal transport, resident keys, user verification) registers a
// passkey, signs out, signs in without a password, renames and deletes it; the answers the
// authenticator produced are then replayed over HTTP and refused, and answers produced on
// this page for a Worker that allows another origin are refused there. Runs on the backend
// TEST_DATABASE names.
//
// The page must be served from an origin of the relying party: the Worker listens on a port
// chosen before it starts, and is configured with WEBAUTHN_RP_ID=localhost and that origin.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startWorker, assertProblem, ROOT, STRONG_PASSWORD, waitFor } from "./helpers.mjs";
import { authenticator } from "otplib";
import { softAuthenticator } from "./webauthn.mjs";

const ARTIFACTS = join(ROOT, "test-artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A local TCP port nothing listens on right now. */
async function freePort() {
  const probe = createServer();
  await new Promise((done) => probe.listen(0, "127.0.0.1", done));
  const { port } = probe.address();
  await new Promise((done) => probe.close(done));
  return port;
}

/** A Worker listening on `port`, whose relying party is localhost with `origins`. */
async function passkeyWorker(port, origins) {
  return startWorker({
    vars: { WEBAUTHN_RP_ID: "localhost", WEBAUTHN_RP_NAME: "edge-auth test", WEBAUTHN_ORIGINS: origins },
    options: { port, host: "127.0.0.1" },
  });
}

describe("passkeys on the account page, in a browser", () => {
  let worker;
  let browser;
  let base;
  let page;
  let cdp;
  let authenticatorId;
  const problems = [];
  /** Bodies the page POSTed, by path, in order. */
  const posted = new Map();

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    if (!existsSync(CHROMIUM)) {
      throw new Error(`no Chromium at ${CHROMIUM}: run \`bash scripts/setup.sh --browser\` (or set CHROMIUM_PATH)`);
    }
    const port = await freePort();
    base = `http://localhost:${port}`;
    worker = await passkeyWorker(port, base);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
    });
    page = await browser.newPage();
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()} at ${message.location().url}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (request.method() === "POST") {
        const list = posted.get(url.pathname) ?? [];
        list.push(request.postData());
        posted.set(url.pathname, list);
      }
      if (url.origin !== base) problems.push(`request to another origin: ${request.url()}`);
    });
    cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    }));
  });
  after(async () => {
    await browser?.close();
    await worker?.dispose();
  });

  /** Wait until the page's status line says `text`. */
  async function status(text) {
    await page
      .locator("#status", { hasText: text })
      .waitFor({ timeout: 15_000 })
      .catch(async (error) => {
        const shown = await page.locator("#status").innerText();
        throw new Error(`status never said ${JSON.stringify(text)}; it says ${JSON.stringify(shown)} (${error.message})`);
      });
  }

  const lastPosted = (path) => (posted.get(path) ?? []).at(-1);

  let account;
  let passkeyId;

  test("register a passkey, sign out, sign in with it, rename and delete it", async () => {
    account = await worker.signup();
    const response = await page.goto(`${base}/account`, { waitUntil: "load" });
    assert.equal(response.status(), 200);
    const csp = response.headers()["content-security-policy"];
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline/);

    await page.getByLabel("Username or email").fill(account.username);
    await page.getByLabel("Password", { exact: true }).fill(STRONG_PASSWORD);
    await page.getByRole("button", { name: "Sign in with password" }).click();
    await status(`Signed in as ${account.username}`);
    assert.equal(await page.locator("#no-passkeys").isVisible(), true);

    await page.getByLabel("Name for the new passkey").fill("Laptop");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await status("Added passkey Laptop.");
    await page.locator("#passkeys li", { hasText: "Laptop" }).waitFor();
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    assert.equal(credentials.length, 1);
    assert.equal(credentials[0].isResidentCredential, true);
    assert.equal(credentials[0].rpId, "localhost");
    const row = await worker.db.first("SELECT * FROM passkeys WHERE user_id = ?1", account.user.id);
    assert.equal(row.name, "Laptop");
    assert.equal(row.credential_id, credentials[0].credentialId.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""));
    assert.equal(row.algorithm, -7, "the virtual authenticator makes ES256 keys");
    assert.equal(row.transports, "internal");
    passkeyId = row.id;
    await page.screenshot({ path: join(ARTIFACTS, "account-passkey-added.png") });

    await page.getByRole("button", { name: "Sign out" }).click();
    await status("Signed out.");
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await status(`Signed in with a passkey as ${account.username}`);
    const used = await worker.db.first("SELECT sign_count, last_used_at FROM passkeys WHERE id = ?1", passkeyId);
    assert.ok(used.last_used_at > 0, "the use is recorded");
    assert.ok(used.sign_count >= 1, "the counter moved forward");
    const actions = await worker.db.query(
      "SELECT action, details FROM audit_log WHERE target_id = ?1 AND action LIKE '%passkey%' ORDER BY id",
      account.user.id,
    );
    assert.deepEqual(
      actions.map((entry) => entry.action),
      ["passkey.registered", "user.passkey_login"],
    );
    assert.equal(JSON.parse(actions[1].details).passkey_id, passkeyId);

    await page.getByLabel("New name for passkey Laptop").fill("Work laptop");
    await page.getByRole("button", { name: "Rename passkey Laptop" }).click();
    await status("Renamed to Work laptop.");
    await page.locator("#passkeys li .name", { hasText: "Work laptop" }).waitFor();

    // Listed for an admin.
    const admin = await worker.admin();
    const listed = await worker.request("GET", `/api/v1/admin/users/${account.user.id}/passkeys`, { token: admin.access_token });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.passkeys.map((passkey) => passkey.name), ["Work laptop"]);

    // The account has a password, so its only passkey may go.
    await page.getByRole("button", { name: "Delete passkey Work laptop" }).click();
    await status("Deleted Work laptop.");
    await page.locator("#no-passkeys").waitFor();
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", account.user.id), 0);
    assert.deepEqual(problems, []);
  });

  test("a replayed registration or sign-in answer finds its challenge spent", async () => {
    const registration = lastPosted("/api/v1/users/me/passkeys");
    const assertion = lastPosted("/api/v1/auth/passkey/verify");
    assert.ok(registration && assertion, "the page posted both answers");
    const token = (await worker.login(account.username)).access_token;
    const again = await worker.request("POST", "/api/v1/users/me/passkeys", { body: registration, token });
    assert.equal(again.status, 400, again.text);
    assert.equal(again.json.type, "urn:edge-auth:problem:invalid_passkey");
    const replay = await worker.request("POST", "/api/v1/auth/passkey/verify", { body: assertion });
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.detail, "Passkey sign-in failed");
    await waitFor(
      () => worker.logs.some((line) => line.includes("unknown_challenge")),
      "the refusal's reason in the security log",
    );
  });

  test("answers made on this page are refused by a Worker that allows another origin", async () => {
    // Same relying party, another allowed origin: this page is not one of its pages.
    const elsewhere = await passkeyWorker(await freePort(), "http://accounts.localhost:1");
    /** What this page's authenticator answers to `options` (a page function: see account.js). */
    const create = (options) =>
      page.evaluate(async (json) => registrationJson(await navigator.credentials.create({ publicKey: creationOptions(json) })), options);
    const get = (options) =>
      page.evaluate(async (json) => assertionJson(await navigator.credentials.get({ publicKey: requestOptions(json) })), options);
    try {
      await cdp.send("WebAuthn.clearCredentials", { authenticatorId });
      const other = await elsewhere.signup();
      const options = await elsewhere.request("POST", "/api/v1/users/me/passkeys/options", { token: other.access_token });
      assert.equal(options.status, 200, options.text);
      assert.equal(options.json.rp.id, "localhost");
      const refused = await elsewhere.request("POST", "/api/v1/users/me/passkeys", {
        body: { response: await create(options.json) },
        token: other.access_token,
      });
      assert.equal(refused.status, 400, refused.text);
      assert.equal(refused.json.type, "urn:edge-auth:problem:invalid_passkey");
      await waitFor(() => elsewhere.logs.some((line) => line.includes("origin_not_allowed")), "origin_not_allowed logged");
      assert.equal(await elsewhere.count("SELECT COUNT(*) AS n FROM passkeys"), 0);

      // A sign-in: a passkey registered on this page's Worker, and its account, copied to
      // the other one's database. Its assertion made here verifies there in every respect
      // but the origin, and is refused.
      await cdp.send("WebAuthn.clearCredentials", { authenticatorId });
      const token = (await worker.login(account.username)).access_token;
      const ours = await worker.request("POST", "/api/v1/users/me/passkeys/options", { token });
      const registered = await worker.request("POST", "/api/v1/users/me/passkeys", {
        body: { name: "Copied", response: await create(ours.json) },
        token,
      });
      assert.equal(registered.status, 201, registered.text);
      const user = await worker.userRow(account.user.id);
      await elsewhere.db.run(
        "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        user.id,
        user.username,
        user.password_hash,
        user.created_at,
      );
      const row = await worker.db.first("SELECT * FROM passkeys WHERE id = ?1", registered.json.id);
      const columns = Object.keys(row);
      await elsewhere.db.run(
        `INSERT INTO passkeys (${columns.join(", ")}) VALUES (${columns.map((_, i) => `?${i + 1}`).join(", ")})`,
        ...columns.map((column) => row[column]),
      );
      const request = await elsewhere.request("POST", "/api/v1/auth/passkey/options");
      assert.equal(request.status, 200, request.text);
      assert.deepEqual(request.json.allowCredentials, []);
      assert.equal(request.json.userVerification, "required");
      const signIn = await elsewhere.request("POST", "/api/v1/auth/passkey/verify", { body: { response: await get(request.json) } });
      assert.equal(signIn.status, 401, signIn.text);
      await waitFor(
        () => elsewhere.logs.filter((line) => line.includes("origin_not_allowed")).length >= 2,
        "the sign-in's origin_not_allowed logged",
      );
      // The same passkey, on its own Worker's page: in.
      const home = await worker.request("POST", "/api/v1/auth/passkey/options");
      const welcome = await worker.request("POST", "/api/v1/auth/passkey/verify", { body: { response: await get(home.json) } });
      assert.equal(welcome.status, 200, welcome.text);
      assert.equal(welcome.json.user.id, account.user.id);
    } finally {
      await elsewhere.dispose();
    }
  });

  const claims = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url"));
  /** The access token the page holds (in its memory only; see account.js). */
  const pageToken = () => page.evaluate(() => state.token);
  /** A fresh page, signed in with `username`'s password up to where the page goes next. */
  async function passwordOnPage(username) {
    await page.getByLabel("Username or email").fill(username);
    await page.getByLabel("Password", { exact: true }).fill(STRONG_PASSWORD);
    await page.getByRole("button", { name: "Sign in with password" }).click();
  }
  /**
   * The one console error a step-up costs: Chromium logs every non-2xx fetch, here the
   * 403 `step_up_required` of `path` that made the page ask; nothing else may be logged.
   */
  function expectStepUpRefusal(path) {
    assert.deepEqual(problems, [
      `console: Failed to load resource: the server responded with a status of 403 (Forbidden) at ${base}${path}`,
    ]);
    problems.length = 0;
  }
  /** As if `userId`'s sessions had proved their second factor long ago. */
  const staleSessions = (userId) => worker.db.run("UPDATE sessions SET aal2_at = ?1 WHERE user_id = ?2", 1, userId);

  test("after the password, the page asks for the passkey as the second factor; a stale session steps up with it", async () => {
    await cdp.send("WebAuthn.clearCredentials", { authenticatorId });
    const holder = await worker.signup();
    await page.goto(`${base}/account`, { waitUntil: "load" });
    await passwordOnPage(holder.username);
    await status(`Signed in as ${holder.username}`);
    assert.equal(await page.locator("#app-status").innerText(), "Not set up.");
    await page.getByLabel("Name for the new passkey").fill("Phone");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await status("Added passkey Phone.");
    await page.getByRole("button", { name: "Sign out" }).click();
    await status("Signed out.");

    await passwordOnPage(holder.username);
    await status("Password accepted: one more step.");
    assert.equal(await page.locator("#signed-out").isVisible(), false);
    assert.equal(
      await page.locator("#second-factor").getByLabel("Code from your authenticator app, or a recovery code").isVisible(),
      false,
      "the account has no app: no code field",
    );
    await page.screenshot({ path: join(ARTIFACTS, "account-second-factor.png") });
    await page.getByRole("button", { name: "Use a passkey" }).click();
    await status(`Signed in as ${holder.username}`);
    const token = claims(await pageToken());
    assert.deepEqual(token.amr, ["pwd", "hwk"]);
    assert.equal(token.aal, "aal2");
    const verify = JSON.parse(lastPosted("/api/v1/auth/mfa/verify"));
    assert.ok(verify.mfa_token && verify.passkey && !verify.code, "the page finished with the passkey");

    // Removing the passkey needs a recent proof: the page asks for it, then deletes.
    await staleSessions(holder.user.id);
    const phone = await worker.db.first("SELECT id FROM passkeys WHERE user_id = ?1", holder.user.id);
    const before = await pageToken();
    await page.getByRole("button", { name: "Delete passkey Phone" }).click();
    await status("confirm it is you");
    assert.equal(await page.locator("#step-up").getByLabel("Code from your authenticator app, or a recovery code").isVisible(), false);
    await page.getByRole("button", { name: "Confirm with a passkey" }).click();
    await status("Deleted Phone.");
    await page.locator("#no-passkeys").waitFor();
    assert.notEqual(await pageToken(), before, "the page uses the step-up's new access token");
    assert.equal(await page.locator("#step-up").isVisible(), false);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", holder.user.id), 0);
    expectStepUpRefusal(`/api/v1/users/me/passkeys/${phone.id}`);
  });

  test("set up an authenticator app on the page, then sign in with the password and its code", async () => {
    await cdp.send("WebAuthn.clearCredentials", { authenticatorId });
    const holder = await worker.signup();
    await page.goto(`${base}/account`, { waitUntil: "load" });
    await passwordOnPage(holder.username);
    await status(`Signed in as ${holder.username}`);
    await page.getByRole("button", { name: "Set up an authenticator app" }).click();
    await status("Scan the QR code");
    // The QR code is inline SVG (the CSP allows no data: images), named by its title.
    const qr = page.locator("#totp-qr svg");
    await qr.waitFor();
    assert.match(await page.getByRole("img", { name: /QR code/ }).getAttribute("viewBox"), /^0 0 \d+ \d+$/);
    await page.screenshot({ path: join(ARTIFACTS, "account-totp-enrol.png") });
    const secret = (await page.locator("#totp-secret").innerText()).trim();
    assert.match(secret, /^[A-Z2-7]+$/);
    await page.getByLabel("Code from the app").fill(authenticator.generate(secret));
    await page.getByRole("button", { name: "Turn on" }).click();
    await status("Authenticator app turned on");
    const codes = await page.locator("#recovery-codes li").allInnerTexts();
    assert.equal(codes.length, 10);
    for (const code of codes) assert.match(code, /^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$/);
    await page.locator("#app-status", { hasText: "10 recovery codes left" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Set up an authenticator app" }).isVisible(), false);
    await page.screenshot({ path: join(ARTIFACTS, "account-recovery-codes.png") });
    await page.getByRole("button", { name: "I have saved them" }).click();
    assert.equal(await page.locator("#recovery").isVisible(), false);
    await page.getByRole("button", { name: "Sign out" }).click();
    await status("Signed out.");

    await passwordOnPage(holder.username);
    await status("Password accepted: one more step.");
    assert.equal(await page.getByRole("button", { name: "Use a passkey" }).isVisible(), false, "no passkey: no passkey button");
    // Each step's code works once, and the enrolment spent the current one: the next step's
    // code (accepted one step early).
    const next = authenticator.clone({ epoch: Date.now() + 30_000 }).generate(secret);
    await page.locator("#second-factor").getByLabel("Code from your authenticator app, or a recovery code").fill(next);
    await page.getByRole("button", { name: "Verify" }).click();
    await status(`Signed in as ${holder.username}`);
    const token = claims(await pageToken());
    assert.deepEqual(token.amr, ["pwd", "otp"]);
    assert.equal(token.aal, "aal2");

    // A stale session adding a passkey steps up with a recovery code, and the page retries.
    await staleSessions(holder.user.id);
    await page.getByLabel("Name for the new passkey").fill("Desk");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await status("confirm it is you");
    await page.locator("#step-up").getByLabel("Code from your authenticator app, or a recovery code").fill(codes[0]);
    await page.getByRole("button", { name: "Confirm", exact: true }).click();
    await status("Added passkey Desk.");
    assert.deepEqual(JSON.parse(lastPosted("/api/v1/auth/mfa/step-up")), { recovery_code: codes[0] });
    await page.locator("#app-status", { hasText: "9 recovery codes left" }).waitFor();
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", holder.user.id), 1);
    expectStepUpRefusal("/api/v1/users/me/passkeys/options");
  });
});

describe("passkeys over HTTP", () => {
  test("are off (404) without a relying party, and a wrong one stops the service", async () => {
    const off = await startWorker();
    try {
      const options = await off.request("POST", "/api/v1/auth/passkey/options");
      assert.equal(options.status, 404);
      const account = await off.signup();
      const list = await off.request("GET", "/api/v1/users/me/passkeys", { token: account.access_token });
      assert.equal(list.status, 404);
    } finally {
      await off.dispose();
    }
    const wrong = await startWorker({
      vars: { WEBAUTHN_RP_ID: "localhost", WEBAUTHN_ORIGINS: "https://evil.example" },
      database: false,
    });
    try {
      const answer = await wrong.request("GET", "/api/health");
      assert.equal(answer.status, 500);
      assert.equal(answer.json.type, "urn:edge-auth:problem:misconfigured");
      assert.ok(!answer.text.includes("evil.example"), "the answer does not echo the setting");
      await waitFor(() => wrong.logs.some((line) => line.includes("WEBAUTHN_ORIGINS")), "the reason in the log");
    } finally {
      await wrong.dispose();
    }
  });

  test("names, owners, the last way to sign in and malformed answers", async () => {
    const port = await freePort();
    const worker = await passkeyWorker(port, `http://localhost:${port}`);
    try {
      const ann = await worker.signup();
      const bob = await worker.signup();
      const options = await worker.request("POST", "/api/v1/users/me/passkeys/options", { token: ann.access_token });
      assert.equal(options.status, 200);
      assert.equal(options.json.authenticatorSelection.residentKey, "required");
      assert.equal(options.json.attestation, "none");
      assert.equal(options.json.rp.name, "edge-auth test");
      // Not a credential at all; a member that is not of the request.
      const malformed = await worker.request("POST", "/api/v1/users/me/passkeys", {
        body: { response: { id: "x" } },
        token: ann.access_token,
      });
      assert.equal(malformed.status, 400);
      const unknown = await worker.request("POST", "/api/v1/users/me/passkeys", {
        body: { response: {}, extra: 1 },
        token: ann.access_token,
      });
      assert.equal(unknown.status, 422);
      const nameless = await worker.request("POST", "/api/v1/auth/passkey/verify", { body: { response: "no" } });
      assert.equal(nameless.status, 422);

      // A passkey stored directly for Bob, whose password is then removed: his last way in.
      const id = "7b0b6d0e-0b0a-4c4e-9a59-3b1d2a0c9f11";
      await worker.db.run(
        "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, sign_count, name, aaguid, \
           backup_eligible, backed_up, transports, created_at) VALUES (?1, ?2, 'Y3JlZA', 'a2V5', -7, 0, 'Key', \
           '00000000-0000-0000-0000-000000000000', ?3, ?3, '', 1)",
        id,
        bob.user.id,
        false,
      );
      const annSees = await worker.request("GET", "/api/v1/users/me/passkeys", { token: ann.access_token });
      assert.deepEqual(annSees.json, { passkeys: [] });
      const notHers = await worker.request("DELETE", `/api/v1/users/me/passkeys/${id}`, { token: ann.access_token });
      assert.equal(notHers.status, 404);
      const renameHers = await worker.request("PATCH", `/api/v1/users/me/passkeys/${id}`, {
        body: { name: "Mine" },
        token: ann.access_token,
      });
      assert.equal(renameHers.status, 404);
      const blank = await worker.request("PATCH", `/api/v1/users/me/passkeys/${id}`, {
        body: { name: "  " },
        token: bob.access_token,
      });
      assert.equal(blank.status, 422);
      const renamed = await worker.request("PATCH", `/api/v1/users/me/passkeys/${id}`, {
        body: { name: "Security key" },
        token: bob.access_token,
      });
      assert.equal(renamed.status, 200, renamed.text);
      assert.equal(renamed.json.name, "Security key");
      assert.equal(renamed.json.last_used_at, null);
      // A provider identity beside it: with no password, either one may go while the other stays.
      const identity = "5d2f9a7c-1e4b-4c3a-8f6d-2b7e9c0a1d33";
      await worker.db.run(
        "INSERT INTO identities (id, user_id, provider, subject, created_at, last_used_at) VALUES (?1, ?2, 'github', ?3, 1, 1)",
        identity,
        bob.user.id,
        `subject-${bob.user.id}`,
      );
      await worker.db.run("UPDATE users SET password_hash = '!none' WHERE id = ?1", bob.user.id);
      const unlinked = await worker.request("DELETE", `/api/v1/users/me/identities/${identity}`, { token: bob.access_token });
      assert.equal(unlinked.status, 204, "the passkey is a way to sign in");
      // A passkey is a second factor: removing one needs a session that proved one lately.
      const notSteppedUp = await worker.request("DELETE", `/api/v1/users/me/passkeys/${id}`, { token: bob.access_token });
      assertProblem(assert, notSteppedUp, 403);
      assert.equal(notSteppedUp.json.type, "urn:edge-auth:problem:step_up_required");
      // (As if Bob's session had just stepped up with the passkey.)
      await worker.db.run(
        "UPDATE sessions SET aal = 'aal2', aal2_at = ?1 WHERE user_id = ?2",
        Math.floor(Date.now() / 1000),
        bob.user.id,
      );
      const last = await worker.request("DELETE", `/api/v1/users/me/passkeys/${id}`, { token: bob.access_token });
      assert.equal(last.status, 409, last.text);
      assert.equal(last.json.type, "urn:edge-auth:problem:last_sign_in_method");
      assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE id = ?1", id), 1);
      // Two passkeys and no other way in, both deleted at once: exactly one goes.
      const second = "9c4e2b1a-7d3f-4e5a-b6c8-0f1e2d3c4b5a";
      await worker.db.run(
        "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, sign_count, name, aaguid, \
           backup_eligible, backed_up, transports, created_at) VALUES (?1, ?2, 'Y3JlZDI', 'a2V5', -7, 0, 'Key 2', \
           '00000000-0000-0000-0000-000000000000', ?3, ?3, '', 2)",
        second,
        bob.user.id,
        false,
      );
      const both = await Promise.all(
        [id, second].map((passkey) => worker.request("DELETE", `/api/v1/users/me/passkeys/${passkey}`, { token: bob.access_token })),
      );
      assert.deepEqual(both.map((response) => response.status).sort(), [204, 409]);
      assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", bob.user.id), 1);
      const entries = await worker.db.query(
        "SELECT action FROM audit_log WHERE target_id = ?1 AND action LIKE 'passkey.%' ORDER BY id",
        bob.user.id,
      );
      assert.deepEqual(entries.map((entry) => entry.action), ["passkey.renamed", "passkey.deleted"]);

      // One passkey and one identity, no password, removed at once: the rule spans both
      // kinds, so exactly one goes and the account keeps a way in.
      const [remaining] = await worker.db.query("SELECT id FROM passkeys WHERE user_id = ?1", bob.user.id);
      const identityToo = "6e3a0b8d-2f5c-4d4b-9a7e-3c8f0d1b2e44";
      await worker.db.run(
        "INSERT INTO identities (id, user_id, provider, subject, created_at, last_used_at) VALUES (?1, ?2, 'github', ?3, 1, 1)",
        identityToo,
        bob.user.id,
        `other-subject-${bob.user.id}`,
      );
      const mixed = await Promise.all([
        worker.request("DELETE", `/api/v1/users/me/passkeys/${remaining.id}`, { token: bob.access_token }),
        worker.request("DELETE", `/api/v1/users/me/identities/${identityToo}`, { token: bob.access_token }),
      ]);
      assert.deepEqual(mixed.map((response) => response.status).sort(), [204, 409]);
      const left =
        (await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", bob.user.id)) +
        (await worker.count("SELECT COUNT(*) AS n FROM identities WHERE user_id = ?1", bob.user.id));
      assert.equal(left, 1, "one way in remains");
    } finally {
      await worker.dispose();
    }
  });

  test("a software authenticator: counters that go back, bans, other origins, other accounts' challenges", async () => {
    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const worker = await passkeyWorker(port, origin);
    try {
      const ann = await worker.signup();
      const device = softAuthenticator({ origin });
      const options = (await worker.request("POST", "/api/v1/users/me/passkeys/options", { token: ann.access_token })).json;
      // Bob's answer to Ann's challenge.
      const bob = await worker.signup();
      const stolen = await worker.request("POST", "/api/v1/users/me/passkeys", {
        body: { response: device.create(options) },
        token: bob.access_token,
      });
      assert.equal(stolen.status, 400, stolen.text);
      const fresh = (await worker.request("POST", "/api/v1/users/me/passkeys/options", { token: ann.access_token })).json;
      const registered = await worker.request("POST", "/api/v1/users/me/passkeys", {
        body: { response: device.create(fresh) },
        token: ann.access_token,
      });
      assert.equal(registered.status, 201, registered.text);
      assert.equal(registered.json.name, "Passkey");
      const signIn = async () => {
        const request = (await worker.request("POST", "/api/v1/auth/passkey/options")).json;
        return worker.request("POST", "/api/v1/auth/passkey/verify", { body: { response: device.get(request) } });
      };
      // One answer sent twice at once: its challenge is spent by exactly one of them.
      const request = (await worker.request("POST", "/api/v1/auth/passkey/options")).json;
      const answer = device.get(request);
      const twice = await Promise.all(
        [0, 1].map(() => worker.request("POST", "/api/v1/auth/passkey/verify", { body: { response: answer } })),
      );
      assert.deepEqual(twice.map((response) => response.status).sort(), [200, 401]);
      device.counter = 41;
      assert.equal((await signIn()).status, 200);
      // A counter that goes back (a cloned key?) is logged, not refused; the stored one stays.
      device.counter = 4;
      const regressed = await signIn();
      assert.equal(regressed.status, 200, regressed.text);
      await waitFor(() => worker.logs.some((line) => line.includes("passkey_counter_regressed")), "the regression logged");
      const row = await worker.db.first("SELECT sign_count FROM passkeys WHERE id = ?1", registered.json.id);
      assert.equal(row.sign_count, 42);
      // Made for another origin: refused, as every other refusal.
      device.origin = "http://localhost:1";
      const elsewhere = await signIn();
      assert.equal(elsewhere.status, 401);
      assert.equal(elsewhere.json.detail, "Passkey sign-in failed");
      device.origin = origin;
      // A banned account: refused after the proof.
      const admin = await worker.admin();
      const ban = await worker.request("POST", `/api/v1/admin/users/${ann.user.id}/ban`, { body: {}, token: admin.access_token });
      assert.equal(ban.status, 200, ban.text);
      const banned = await signIn();
      assert.equal(banned.status, 403, banned.text);
      const failures = await worker.db.query(
        "SELECT details FROM audit_log WHERE action = 'user.login_failed' AND target_id = ?1 ORDER BY id",
        ann.user.id,
      );
      assert.deepEqual(
        failures.map((entry) => JSON.parse(entry.details)),
        [
          { reason: "origin_not_allowed", method: "passkey" },
          { reason: "banned", method: "passkey" },
        ],
      );
    } finally {
      await worker.dispose();
    }
  });
});

describe("a passkey as the second factor", () => {
  let worker;
  let origin;
  before(async () => {
    const port = await freePort();
    origin = `http://localhost:${port}`;
    worker = await passkeyWorker(port, origin);
  });
  after(() => worker.dispose());

  /** An account with one passkey on `device`; its signup session predates the passkey (aal1). */
  async function keyholder(device) {
    const account = await worker.signup();
    const options = (await worker.request("POST", "/api/v1/users/me/passkeys/options", { token: account.access_token })).json;
    const registered = await worker.request("POST", "/api/v1/users/me/passkeys", {
      body: { response: device.create(options) },
      token: account.access_token,
    });
    assert.equal(registered.status, 201, registered.text);
    return account;
  }

  const claims = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url"));

  test("a password login asks for the passkey, whose assertion finishes it at aal2 with amr pwd+hwk", async () => {
    const device = softAuthenticator({ origin });
    const account = await keyholder(device);
    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: STRONG_PASSWORD },
    });
    assert.equal(login.status, 200);
    assert.equal(login.json.mfa_required, true);
    assert.deepEqual(login.json.factors, ["passkey"]);
    assert.equal(login.json.access_token, undefined, "no tokens before the second factor");
    const bogus = await worker.request("POST", "/api/v1/auth/mfa/passkey/options", { body: { mfa_token: "nope" } });
    assertProblem(assert, bogus, 401);
    // Fetching options leaves the sign-in pending; the challenge names this account's passkey.
    const options = await worker.request("POST", "/api/v1/auth/mfa/passkey/options", { body: { mfa_token: login.json.mfa_token } });
    assert.equal(options.status, 200, options.text);
    assert.deepEqual(options.json.allowCredentials.map((credential) => credential.id), [device.credentialId]);
    const verified = await worker.request("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: login.json.mfa_token, passkey: device.get(options.json) },
    });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(claims(verified.json.access_token).amr, ["pwd", "hwk"]);
    assert.equal(claims(verified.json.access_token).aal, "aal2");
    const spent = await worker.request("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: login.json.mfa_token, passkey: device.get(options.json) },
    });
    assertProblem(assert, spent, 401);
  });

  test("an assertion for another challenge, or by another account's passkey, is a failed attempt", async () => {
    const device = softAuthenticator({ origin });
    const account = await keyholder(device);
    const stranger = softAuthenticator({ origin });
    await keyholder(stranger);
    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: STRONG_PASSWORD },
    });
    // A passwordless challenge is nobody's: it cannot finish this sign-in.
    const passwordless = (await worker.request("POST", "/api/v1/auth/passkey/options")).json;
    const wrongChallenge = await worker.request("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: login.json.mfa_token, passkey: device.get(passwordless) },
    });
    assertProblem(assert, wrongChallenge, 401);
    // The other account's passkey answering this account's challenge.
    const options = (await worker.request("POST", "/api/v1/auth/mfa/passkey/options", { body: { mfa_token: login.json.mfa_token } })).json;
    const foreign = await worker.request("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: login.json.mfa_token, passkey: stranger.get({ ...options, allowCredentials: [] }) },
    });
    assertProblem(assert, foreign, 401);
    const failures = await worker.db.query(
      "SELECT details FROM audit_log WHERE target_id = ?1 AND action = 'user.login_failed' ORDER BY id",
      account.user.id,
    );
    assert.equal(failures.filter((row) => String(row.details).includes("wrong_second_factor")).length, 2);
    // The sign-in is still open for the right answer.
    const again = (await worker.request("POST", "/api/v1/auth/mfa/passkey/options", { body: { mfa_token: login.json.mfa_token } })).json;
    const verified = await worker.request("POST", "/api/v1/auth/mfa/verify", {
      body: { mfa_token: login.json.mfa_token, passkey: device.get(again) },
    });
    assert.equal(verified.status, 200, verified.text);
  });

  test("an admin reset removes the passkeys, audited, and the password alone signs in again", async () => {
    const device = softAuthenticator({ origin });
    const account = await keyholder(device);
    const password = { body: { username: account.username, password: STRONG_PASSWORD } };
    assert.equal((await worker.request("POST", "/api/v1/auth/login", password)).json.mfa_required, true);
    const admin = await worker.admin();
    const reset = await worker.request("DELETE", `/api/v1/admin/users/${account.user.id}/mfa`, { token: admin.access_token });
    assert.equal(reset.status, 204, reset.text);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM passkeys WHERE user_id = ?1", account.user.id), 0);
    const entries = await worker.db.query(
      "SELECT action FROM audit_log WHERE target_id = ?1 AND action = 'mfa.reset'",
      account.user.id,
    );
    assert.equal(entries.length, 1);
    const signedIn = await worker.request("POST", "/api/v1/auth/login", password);
    assert.equal(signedIn.status, 200);
    assert.ok(signedIn.json.access_token, "tokens, no second factor asked");
    const again = await worker.request("DELETE", `/api/v1/admin/users/${account.user.id}/mfa`, { token: admin.access_token });
    assertProblem(assert, again, 404);
  });

  test("with a passkey, sensitive operations need a step-up, which the passkey gives", async () => {
    const device = softAuthenticator({ origin });
    const account = await keyholder(device);
    const token = account.access_token;
    // The signup session proved no second factor.
    const change = () =>
      worker.request("POST", "/api/v1/auth/password/change", {
        token,
        body: { current_password: STRONG_PASSWORD, new_password: "a different long passphrase" },
      });
    const refused = await change();
    assertProblem(assert, refused, 403);
    assert.equal(refused.json.type, "urn:edge-auth:problem:step_up_required");
    const another = softAuthenticator({ origin });
    const addRefused = await worker.request("POST", "/api/v1/users/me/passkeys/options", { token });
    assert.equal(addRefused.status, 403, "a second passkey needs a step-up too");
    const options = await worker.request("POST", "/api/v1/auth/mfa/step-up/options", { token });
    assert.equal(options.status, 200, options.text);
    const stepped = await worker.request("POST", "/api/v1/auth/mfa/step-up", {
      token,
      body: { passkey: device.get(options.json) },
    });
    assert.equal(stepped.status, 200, stepped.text);
    assert.deepEqual(claims(stepped.json.access_token).amr, ["pwd", "hwk"]);
    assert.equal((await change()).status, 200);
    const creation = (await worker.request("POST", "/api/v1/users/me/passkeys/options", { token })).json;
    const added = await worker.request("POST", "/api/v1/users/me/passkeys", {
      token,
      body: { response: another.create(creation) },
    });
    assert.equal(added.status, 201, added.text);
    // Without a passkey there is nothing to step up with.
    const plain = await worker.signup();
    assertProblem(assert, await worker.request("POST", "/api/v1/auth/mfa/step-up/options", { token: plain.access_token }), 404);
  });
});
