// Email flows — verification, password reset, email change — through the development
// outbox, the HTML pages links open, and real delivery: SMTP to a local SMTP server and the
// HTTP provider to a local HTTP server.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { SMTPServer } from "smtp-server";
import {
  startWorker,
  startHttpProvider,
  assertProblem,
  address,
  uniqueName,
  nowSeconds,
  sleep,
  waitFor,
  STRONG_PASSWORD,
} from "./helpers.mjs";

const NEW_PASSWORD = "a completely new passphrase";
const DEV_VARS = {
  ENVIRONMENT: "development",
  PUBLIC_BASE_URL: "https://auth.acme.test",
  APP_NAME: "Acme",
};

describe("email verification", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: DEV_VARS });
  });
  after(() => worker.dispose());

  test("signup sends a verification message with a link and a code", async () => {
    const email = address();
    const account = await worker.signup({ email });
    assert.equal(account.user.email_verified, false);
    const message = await worker.latestMessage(email, "verify_email");
    assert.equal(message.to, email);
    assert.equal(message.subject, "Verify your email for Acme");
    assert.match(message.token, /^[A-Za-z0-9_-]{43}$/);
    assert.match(message.code, /^\d{6}$/);
    assert.ok(message.text.includes(`https://auth.acme.test/verify-email?token=${message.token}`));
    assert.ok(message.text.includes(message.code));
    assert.ok(message.html.includes(message.code));
    assert.ok(message.html.includes(`href="https://auth.acme.test/verify-email?token=${message.token}"`));
    const stored = await worker.db.first(
      "SELECT token_hash, code_hash FROM one_time_tokens WHERE user_id = ?1",
      account.user.id,
    );
    assert.notEqual(stored.token_hash, message.token, "only digests are stored");
    assert.notEqual(stored.code_hash, message.code);
  });

  test("opening the link shows a form and spends nothing; the token then verifies once", async () => {
    const email = address();
    const account = await worker.signup({ email });
    const { token } = await worker.latestMessage(email, "verify_email");
    for (let i = 0; i < 2; i += 1) {
      const page = await worker.fetch(`/verify-email?token=${token}`);
      const html = await page.text();
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type"), /^text\/html/);
      assert.match(html, /<form method="post">/);
      assert.ok(html.includes(`value="${token}"`));
      const csp = page.headers.get("content-security-policy");
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /form-action 'self'/);
      assert.match(csp, /style-src 'sha256-/);
      assert.equal(page.headers.get("x-frame-options"), "DENY");
    }
    const verified = await worker.request("POST", "/api/v1/auth/verify-email", { body: { token } });
    assert.equal(verified.status, 200, verified.text);
    assert.equal(verified.json.user.email_verified, true);
    assert.equal(verified.json.user.id, account.user.id);
    const again = await worker.request("POST", "/api/v1/auth/verify-email", { body: { token } });
    const body = assertProblem(assert, again, 422);
    assert.deepEqual(body.errors, [{ field: "token", message: "is invalid or expired" }]);
    const loggedIn = await worker.attemptLogin(email);
    assert.equal(loggedIn.json.user.email_verified, true);
  });

  test("the page's button verifies (form POST) and says so", async () => {
    const email = address();
    await worker.signup({ email });
    const { token } = await worker.latestMessage(email, "verify_email");
    const response = await worker.fetch("/verify-email", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }).toString(),
    });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /Your email address is verified/);
    const replay = await worker.fetch("/verify-email", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token }).toString(),
    });
    assert.equal(replay.status, 422);
    assert.match(await replay.text(), /invalid, has expired, or was already used/);
  });

  test("the six-digit code verifies instead of the link", async () => {
    const email = address();
    await worker.signup({ email });
    const { code } = await worker.latestMessage(email, "verify_email");
    const response = await worker.request("POST", "/api/v1/auth/verify-email", {
      body: { email: email.toUpperCase(), code },
    });
    assert.equal(response.status, 200, response.text);
    assert.equal(response.json.user.email_verified, true);
  });

  test("wrong codes are limited: after 5 the right one no longer works", async () => {
    const email = address();
    await worker.signup({ email });
    const { code } = await worker.latestMessage(email, "verify_email");
    const wrong = code === "000000" ? "000001" : "000000";
    for (let i = 0; i < 5; i += 1) {
      const response = await worker.request("POST", "/api/v1/auth/verify-email", {
        body: { email, code: wrong },
      });
      const body = assertProblem(assert, response, 422);
      assert.deepEqual(body.errors, [{ field: "code", message: "is invalid or expired" }]);
    }
    const right = await worker.request("POST", "/api/v1/auth/verify-email", { body: { email, code } });
    assertProblem(assert, right, 422);
  });

  test("resend answers 202 alike for unknown, verified and unverified addresses", async () => {
    const email = address();
    await worker.signup({ email });
    const first = await worker.latestMessage(email, "verify_email");
    const known = await worker.request("POST", "/api/v1/auth/verify-email/resend", { body: { email } });
    const unknown = await worker.request("POST", "/api/v1/auth/verify-email/resend", {
      body: { email: address("nobody") },
    });
    assert.equal(known.status, 202);
    assert.equal(unknown.status, 202);
    assert.deepEqual(known.json, unknown.json);
    const messages = (await worker.outbox(email)).filter((m) => m.purpose === "verify_email");
    assert.equal(messages.length, 2);
    assert.notEqual(messages[0].token, first.token, "newest first");
    assertProblem(
      assert,
      await worker.request("POST", "/api/v1/auth/verify-email", { body: { token: first.token } }),
      422,
    );
    const newest = await worker.request("POST", "/api/v1/auth/verify-email", {
      body: { token: messages[0].token },
    });
    assert.equal(newest.status, 200);
  });

  test("expired tokens and tokens of another purpose are refused", async () => {
    const email = address();
    const account = await worker.signup({ email });
    const { token } = await worker.latestMessage(email, "verify_email");
    const reset = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token, new_password: NEW_PASSWORD },
    });
    assertProblem(assert, reset, 422);
    await worker.db.run(
      "UPDATE one_time_tokens SET expires_at = ?2 WHERE user_id = ?1",
      account.user.id,
      nowSeconds() - 1,
    );
    assertProblem(
      assert,
      await worker.request("POST", "/api/v1/auth/verify-email", { body: { token } }),
      422,
    );
  });

  test("verify needs a token or an email with a code", async () => {
    const response = await worker.request("POST", "/api/v1/auth/verify-email", { body: {} });
    const body = assertProblem(assert, response, 422);
    assert.equal(body.errors[0].field, "token");
  });
});

describe("password reset", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: DEV_VARS });
  });
  after(() => worker.dispose());

  test("reset requests answer the same for known and unknown accounts", async () => {
    const email = address();
    const account = await worker.signup({ email });
    const requests = [
      { email },
      { username: account.username },
      { email: address("ghost") },
      { username: uniqueName("ghost") },
    ];
    const answers = [];
    for (const body of requests) {
      const response = await worker.request("POST", "/api/v1/auth/password/reset", { body });
      assert.equal(response.status, 202);
      answers.push(response.json);
    }
    for (const answer of answers) assert.deepEqual(answer, answers[0]);
    const resets = (await worker.outbox(email)).filter((m) => m.purpose === "reset_password");
    assert.equal(resets.length, 2, "one per request naming the account");
    assert.match(resets[0].text, /\/reset-password\?token=/);
  });

  test("reset by link token: old password fails, new works, every session is dead", async () => {
    const email = address();
    const account = await worker.signup({ email });
    const other = await worker.attemptLogin(account.username);
    await worker.request("POST", "/api/v1/auth/password/reset", { body: { email } });
    const { token } = await worker.latestMessage(email, "reset_password");
    const confirm = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token, new_password: NEW_PASSWORD },
    });
    assert.equal(confirm.status, 200, confirm.text);
    assert.equal((await worker.attemptLogin(email)).status, 401);
    const fresh = await worker.attemptLogin(email, NEW_PASSWORD);
    assert.equal(fresh.status, 200);
    assert.equal(fresh.json.user.email_verified, true, "a reset proves the address");
    for (const session of [account, other.json]) {
      assert.equal(
        (await worker.request("GET", "/api/v1/users/me", { token: session.access_token })).status,
        401,
      );
      assert.equal(
        (
          await worker.request("POST", "/api/v1/auth/refresh", {
            body: { refresh_token: session.refresh_token },
          })
        ).status,
        401,
      );
    }
    const reuse = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token, new_password: "yet another passphrase" },
    });
    assertProblem(assert, reuse, 422);
  });

  test("reset by code, with the password policy applied and the token kept on refusal", async () => {
    const email = address();
    await worker.signup({ email });
    await worker.request("POST", "/api/v1/auth/password/reset", { body: { email } });
    const { code } = await worker.latestMessage(email, "reset_password");
    const weak = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { email, code, new_password: "password1" },
    });
    const body = assertProblem(assert, weak, 422);
    assert.equal(body.errors[0].field, "new_password");
    const good = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { email, code, new_password: NEW_PASSWORD },
    });
    assert.equal(good.status, 200, good.text);
    assert.equal((await worker.attemptLogin(email, NEW_PASSWORD)).status, 200);
  });

  test("the reset page shows a password form and sets the password on submit", async () => {
    const email = address();
    await worker.signup({ email });
    await worker.request("POST", "/api/v1/auth/password/reset", { body: { email } });
    const { token } = await worker.latestMessage(email, "reset_password");
    const form = await (await worker.fetch(`/reset-password?token=${token}`)).text();
    assert.match(form, /name="new_password"/);
    const submit = (password) =>
      worker.fetch("/reset-password", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token, new_password: password }).toString(),
      });
    const weak = await submit("short");
    assert.equal(weak.status, 422);
    assert.match(await weak.text(), /The new password must be 8 to 128 characters long/);
    const done = await submit(NEW_PASSWORD);
    assert.equal(done.status, 200);
    assert.match(await done.text(), /Your password has been changed/);
    assert.equal((await worker.attemptLogin(email, NEW_PASSWORD)).status, 200);
  });

  test("a page without a token explains itself", async () => {
    const response = await worker.fetch("/reset-password");
    assert.equal(response.status, 400);
    assert.match(await response.text(), /missing its token/);
  });
});

describe("email change", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: DEV_VARS });
  });
  after(() => worker.dispose());

  test("a new address applies only once confirmed; the old one gets a notice", async () => {
    const oldEmail = address("old");
    const newEmail = address("new");
    const account = await worker.signup({ email: oldEmail });
    const patch = await worker.request("PATCH", "/api/v1/users/me", {
      token: account.access_token,
      body: { email: newEmail.toUpperCase(), current_password: STRONG_PASSWORD },
    });
    assert.equal(patch.status, 200, patch.text);
    assert.equal(patch.json.email, oldEmail, "unchanged until confirmed");
    assert.equal(patch.json.pending_email, newEmail);
    const notice = await worker.latestMessage(oldEmail, "email_change_notice");
    assert.ok(notice.text.includes(newEmail));
    assert.equal(notice.token, null);
    const { token } = await worker.latestMessage(newEmail, "change_email");
    assert.equal((await worker.attemptLogin(newEmail)).status, 401);
    const confirm = await worker.request("POST", "/api/v1/auth/email/confirm", { body: { token } });
    assert.equal(confirm.status, 200, confirm.text);
    assert.equal(confirm.json.user.email, newEmail);
    assert.equal(confirm.json.user.email_verified, true);
    assert.equal((await worker.attemptLogin(newEmail)).status, 200);
    assert.equal((await worker.attemptLogin(oldEmail)).status, 401);
  });

  test("an address of another account gets no message and cannot be confirmed", async () => {
    const takenEmail = address("taken");
    await worker.signup({ email: takenEmail });
    const account = await worker.signup({ email: address("mine") });
    const before = (await worker.outbox(takenEmail)).length;
    const patch = await worker.request("PATCH", "/api/v1/users/me", {
      token: account.access_token,
      body: { email: takenEmail, current_password: STRONG_PASSWORD },
    });
    assert.equal(patch.status, 200, "the answer does not reveal the address is taken");
    assert.equal(patch.json.pending_email, takenEmail);
    assert.equal((await worker.outbox(takenEmail)).length, before);
  });

  test("confirming fails with 409 if the address was taken meanwhile", async () => {
    const account = await worker.signup({ email: address("first") });
    const wanted = address("wanted");
    await worker.request("PATCH", "/api/v1/users/me", {
      token: account.access_token,
      body: { email: wanted, current_password: STRONG_PASSWORD },
    });
    const { token } = await worker.latestMessage(wanted, "change_email");
    await worker.signup({ email: wanted });
    const confirm = await worker.request("POST", "/api/v1/auth/email/confirm", { body: { token } });
    assertProblem(assert, confirm, 409);
  });
});

describe("required verification", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { ...DEV_VARS, REQUIRE_EMAIL_VERIFICATION: "true" } });
  });
  after(() => worker.dispose());

  test("signup needs an email and gives no tokens until it is verified", async () => {
    const missing = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username: uniqueName(), password: STRONG_PASSWORD },
    });
    const problem = assertProblem(assert, missing, 422);
    assert.equal(problem.errors[0].field, "email");
    const email = address();
    const username = uniqueName();
    const signup = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username, email, password: STRONG_PASSWORD },
    });
    assert.equal(signup.status, 201);
    assert.equal(signup.json.verification_required, true);
    assert.equal(signup.json.access_token, undefined);
    assert.equal(signup.json.refresh_token, undefined);
    assert.equal(await worker.count("SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?1", signup.json.user.id), 0);
    const refused = await worker.attemptLogin(username);
    const body = assertProblem(assert, refused, 403);
    assert.match(body.detail, /not verified/);
    const wrong = await worker.attemptLogin(username, "not the password at all");
    assertProblem(assert, wrong, 401);
    const { code } = await worker.latestMessage(email, "verify_email");
    await worker.request("POST", "/api/v1/auth/verify-email", { body: { email, code } });
    const ok = await worker.attemptLogin(username);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.user.email_verified, true);
  });
});

describe("development routes outside development", () => {
  test("the outbox and the hashing and memory probes do not exist", async () => {
    const worker = await startWorker();
    try {
      assertProblem(assert, await worker.request("GET", "/api/v1/dev/outbox?to=a@b.test"), 404);
      assertProblem(assert, await worker.request("GET", "/api/v1/dev/argon2"), 404);
      assertProblem(assert, await worker.request("GET", "/api/v1/dev/memory"), 404);
    } finally {
      await worker.dispose();
    }
  });
});

for (const mechanism of ["PLAIN", "LOGIN"]) describe(`SMTP provider with AUTH ${mechanism}`, () => {
  let smtp;
  let worker;
  const received = [];
  before(async () => {
    smtp = new SMTPServer({
      secure: false,
      disabledCommands: ["STARTTLS"],
      allowInsecureAuth: true,
      authMethods: [mechanism],
      onAuth(auth, session, callback) {
        if (auth.username === "mailer" && auth.password === "relay-secret") {
          callback(null, { user: auth.username });
        } else {
          callback(new Error("bad credentials"));
        }
      },
      onData(stream, session, callback) {
        let data = "";
        stream.setEncoding("utf8");
        stream.on("data", (chunk) => (data += chunk));
        stream.on("end", () => {
          received.push({
            data,
            method: session.user ? mechanism : null,
            from: session.envelope.mailFrom.address,
            to: session.envelope.rcptTo.map((r) => r.address),
            user: session.user,
          });
          callback();
        });
      },
    });
    await new Promise((resolve) => smtp.listen(0, "127.0.0.1", resolve));
    worker = await startWorker({
      vars: {
        EMAIL_PROVIDER: "smtp",
        SMTP_HOST: "127.0.0.1",
        SMTP_PORT: String(smtp.server.address().port),
        SMTP_SECURITY: "none",
        SMTP_USERNAME: "mailer",
        SMTP_PASSWORD: "relay-secret",
        EMAIL_FROM: "Acme <no-reply@acme.test>",
        PUBLIC_BASE_URL: "https://auth.acme.test",
        APP_NAME: "Acme",
      },
    });
  });
  after(async () => {
    await worker.dispose();
    await new Promise((resolve) => smtp.close(resolve));
  });

  test("a signup's verification is delivered through an authenticated SMTP relay", async () => {
    const email = address("smtp");
    await worker.signup({ email });
    const message = await waitFor(
      () => received.find((m) => m.to.includes(email)),
      "the SMTP message",
      5_000,
    );
    assert.equal(message.from, "no-reply@acme.test");
    assert.equal(message.user, "mailer");
    assert.equal(message.method, mechanism);
    assert.match(message.data, /^From: Acme <no-reply@acme\.test>\r\n/m);
    assert.match(message.data, new RegExp(`^To: ${email.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\r$`, "m"));
    assert.match(message.data, /^Subject: Verify your email for Acme\r$/m);
    assert.match(message.data, /^Message-ID: <[^>]+@acme\.test>\r$/m);
    const parts = message.data.split(/--=_[0-9a-f]+/);
    const text = Buffer.from(parts[1].split("\r\n\r\n")[1].replace(/\s+/g, ""), "base64").toString();
    assert.match(text, /https:\/\/auth\.acme\.test\/verify-email\?token=[A-Za-z0-9_-]{43}/);
    assert.match(text, /enter this code: \d{6}/);
    const html = Buffer.from(parts[2].split("\r\n\r\n")[1].replace(/\s+/g, ""), "base64").toString();
    assert.match(html, /<a href="https:\/\/auth\.acme\.test\/verify-email\?token=/);
    await sleep(100);
    assert.ok(worker.logs.some((line) => line.includes('"email_sent"')));
    assert.ok(!worker.logs.some((line) => line.includes(text.match(/code: (\d{6})/)[1])), "the code is never logged");
  });
});

describe("HTTP provider", () => {
  let provider;
  let worker;
  before(async () => {
    provider = await startHttpProvider();
    worker = await startWorker({
      vars: {
        EMAIL_PROVIDER: "http",
        EMAIL_HTTP_URL: provider.url,
        EMAIL_HTTP_KEY: "re_test_key",
        EMAIL_FROM: "Acme <no-reply@acme.test>",
        PUBLIC_BASE_URL: "https://auth.acme.test",
      },
    });
  });
  after(async () => {
    await worker.dispose();
    await provider.close();
  });

  test("messages are POSTed as JSON with the bearer key", async () => {
    const email = address("http");
    await worker.signup({ email });
    await provider.waitForRequests(1);
    const [request] = provider.requests;
    assert.equal(request.method, "POST");
    assert.equal(request.url, "/emails");
    assert.equal(request.headers.authorization, "Bearer re_test_key");
    assert.match(request.headers["content-type"], /application\/json/);
    assert.equal(request.body.from, "Acme <no-reply@acme.test>");
    assert.equal(request.body.to, email);
    assert.match(request.body.subject, /Verify your email/);
    assert.match(request.body.text, /\d{6}/);
    assert.match(request.body.html, /<a href=/);
  });

  test("a failing provider is retried, then the message is delivered once", async () => {
    provider.requests.length = 0;
    provider.failuresLeft = 2;
    await worker.request("POST", "/api/v1/auth/password/reset", {
      body: { email: (await worker.signup({ email: address("retry") })).user.email },
    });
    await provider.waitForRequests(4);
    await sleep(300);
    assert.equal(provider.requests.length, 4, "signup message once, reset message after two failures");
  });

  test("a provider that keeps failing leaves an error line, not silence", async () => {
    provider.requests.length = 0;
    provider.failuresLeft = 100;
    const email = address("lost");
    await worker.signup({ email });
    await provider.waitForRequests(3);
    await sleep(300);
    provider.failuresLeft = 0;
    const failure = worker.logs.find((line) => line.includes('"email_delivery_failed"'));
    assert.ok(failure, "an email_delivery_failed line");
    const parsed = JSON.parse(failure);
    assert.equal(parsed.level, "error");
    assert.equal(parsed.purpose, "verify_email");
    assert.ok(!failure.includes(email), "the address is masked");
  });
});

describe("Cloudflare send_email provider", () => {
  let worker;
  before(async () => {
    worker = await startWorker({
      vars: {
        EMAIL_PROVIDER: "cloudflare",
        EMAIL_FROM: "Acme <no-reply@acme.test>",
        PUBLIC_BASE_URL: "https://auth.acme.test",
      },
      options: { email: { send_email: [{ name: "EMAIL" }] } },
    });
  });
  after(() => worker.dispose());

  test("messages go through the send_email binding as MIME", async () => {
    const email = address("cf");
    await worker.signup({ email });
    let line;
    for (let i = 0; i < 100 && !line; i += 1) {
      line = worker.logs.find((entry) => /Email: .*\.eml/.test(entry));
      if (!line) await sleep(50);
    }
    assert.ok(line, "the binding received a message");
    const { readFileSync } = await import("node:fs");
    const raw = readFileSync(line.match(/Email: (.*\.eml)/)[1].trim(), "utf8");
    assert.match(raw, /^From: Acme <no-reply@acme\.test>\r$/m);
    assert.ok(raw.includes(`To: ${email}`));
    assert.match(raw, /^Subject: Verify your email for edge-auth\r$/m);
    assert.ok(worker.logs.some((entry) => entry.includes('"email_sent"')));
  });
});
