// Log hygiene: the Worker's output over a full account life (signup, failed and good logins,
// refresh, password change, email verification, password reset) is one JSON object per line,
// each tied to its request, and carries no password, token, code or full email address.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, uniqueName, sleep, STRONG_PASSWORD } from "./helpers.mjs";

describe("log hygiene", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { ENVIRONMENT: "development", PUBLIC_BASE_URL: "https://auth.test" } });
  });
  after(() => worker.dispose());

  test("a full flow logs JSON lines with request ids and no secrets", async () => {
    const secrets = [];
    const requestIds = [];
    const call = async (method, path, init) => {
      const response = await worker.request(method, path, init);
      requestIds.push(response.headers.get("x-request-id"));
      return response;
    };
    const outboxToken = async (to, purpose) => {
      const messages = (await call("GET", `/api/v1/dev/outbox?to=${encodeURIComponent(to)}`)).json;
      const message = messages.find((entry) => entry.purpose === purpose);
      secrets.push(message.token, message.code);
      return message;
    };
    const start = worker.logs.length;

    const username = uniqueName("hygiene");
    const email = `${uniqueName("Private.Person")}@Example.com`;
    const wrongPassword = "not the password at all";
    const newPassword = "a brand new passphrase";
    const resetPassword = "the password after reset";
    secrets.push(STRONG_PASSWORD, wrongPassword, newPassword, resetPassword, email, email.toLowerCase());

    const signup = await call("POST", "/api/v1/auth/signup", { body: { username, email, password: STRONG_PASSWORD } });
    assert.equal(signup.status, 201, signup.text);
    secrets.push(signup.json.access_token, signup.json.refresh_token, signup.json.refresh_token.split(".")[1]);
    assert.equal((await call("POST", "/api/v1/auth/login", { body: { username: email, password: wrongPassword } })).status, 401);
    assert.equal((await call("POST", "/api/v1/auth/login", { body: { email: `no.one.${email}`, password: wrongPassword } })).status, 401);
    const login = await call("POST", "/api/v1/auth/login", { body: { username: email, password: STRONG_PASSWORD } });
    assert.equal(login.status, 200);
    secrets.push(login.json.access_token, login.json.refresh_token);
    const refreshed = await call("POST", "/api/v1/auth/refresh", { body: { refresh_token: login.json.refresh_token } });
    assert.equal(refreshed.status, 200);
    secrets.push(refreshed.json.access_token, refreshed.json.refresh_token, refreshed.json.refresh_token.split(".")[1]);
    // The spent token again, after the grace window would be reuse; within it, the same successor.
    assert.equal((await call("POST", "/api/v1/auth/refresh", { body: { refresh_token: "forged.token" } })).status, 401);
    const changed = await call("POST", "/api/v1/auth/password/change", {
      token: refreshed.json.access_token,
      body: { current_password: STRONG_PASSWORD, new_password: newPassword },
    });
    assert.equal(changed.status, 200, changed.text);
    const wrongCurrent = await call("POST", "/api/v1/auth/password/change", {
      token: refreshed.json.access_token,
      body: { current_password: wrongPassword, new_password: resetPassword },
    });
    assert.equal(wrongCurrent.status, 422);

    assert.equal((await call("POST", "/api/v1/auth/verify-email/resend", { body: { email } })).status, 202);
    const verification = await outboxToken(email.toLowerCase(), "verify_email");
    const verified = await call("POST", "/api/v1/auth/verify-email", {
      body: { email, code: verification.code },
    });
    assert.equal(verified.status, 200, verified.text);
    assert.equal((await call("POST", "/api/v1/auth/password/reset", { body: { email } })).status, 202);
    const reset = await outboxToken(email.toLowerCase(), "reset_password");
    const wrongCode = await call("POST", "/api/v1/auth/password/reset/confirm", {
      body: { email, code: "000000", new_password: resetPassword },
    });
    assert.equal(wrongCode.status, 422);
    const confirmed = await call("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token: reset.token, new_password: resetPassword },
    });
    assert.equal(confirmed.status, 200, confirmed.text);
    assert.equal(
      (await call("GET", "/api/v1/users/me", { token: refreshed.json.access_token })).status,
      401,
      "the reset ended every session",
    );

    // workerd flushes output asynchronously: wait until every request's line is in.
    for (let waited = 0; waited < 5000; waited += 50) {
      if (worker.logs.slice(start).filter((line) => line.includes('"event":"request"')).length >= requestIds.length) break;
      await sleep(50);
    }
    const lines = worker.logs.slice(start);
    const entries = lines.map((line) => {
      let entry;
      assert.doesNotThrow(() => (entry = JSON.parse(line)), `not JSON: ${line}`);
      assert.equal(typeof entry, "object", line);
      return entry;
    });
    for (const entry of entries) {
      assert.match(entry.request_id ?? "", /^[0-9a-f-]{36}$/, `a request_id in ${JSON.stringify(entry)}`);
      assert.ok(requestIds.includes(entry.request_id), `${entry.request_id} belongs to a request of this flow`);
      assert.ok(["info", "warn", "error"].includes(entry.level), JSON.stringify(entry));
    }
    const requests = entries.filter((entry) => entry.event === "request");
    assert.deepEqual(requests.map((entry) => entry.request_id).sort(), [...requestIds].sort(), "one request line each");
    // The flow's security events are there, so the search below looks at real content.
    const events = new Set(entries.map((entry) => entry.event));
    for (const event of ["login_failed", "password_changed", "password_reset"]) {
      assert.ok(events.has(event), `a ${event} line among ${[...events].join(", ")}`);
    }

    const text = lines.join("\n");
    for (const secret of secrets.filter(Boolean)) {
      assert.ok(!text.includes(secret), `the log holds a secret: ${secret.slice(0, 12)}…`);
    }
    // Nothing that looks like a JWT or a full address, whatever it came from.
    assert.doesNotMatch(text, /eyJ[\w-]+\.[\w-]+\.[\w-]+/);
    assert.doesNotMatch(text, /[\w.+-]+[^*]@example\.com/i);
  });

  test("the location comes from Cloudflare's headers, and from request.cf without them", async () => {
    const start = worker.logs.length;
    const cf = { colo: "DFW", country: "US" };
    const onEdge = await worker.request("GET", "/api/ping", {
      cf,
      headers: { "cf-ray": "8f1e2d3c4b5a6978-AMS", "cf-ipcountry": "NL" },
    });
    const local = await worker.request("GET", "/api/ping", { cf });
    await sleep(50);
    const colo = (response) => {
      const id = response.headers.get("x-request-id");
      const line = worker.logs
        .slice(start)
        .map((text) => JSON.parse(text))
        .find((entry) => entry.event === "request" && entry.request_id === id);
      return line?.colo;
    };
    assert.equal(colo(onEdge), "AMS", "the Ray ID's colo");
    assert.equal(colo(local), "DFW", "request.cf's colo");

    // A session records both: the country beside the colo.
    const account = await worker.signup();
    const login = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: STRONG_PASSWORD },
      cf,
      headers: { "cf-ray": "8f1e2d3c4b5a6979-AMS", "cf-ipcountry": "NL" },
    });
    assert.equal(login.status, 200, login.text);
    const sessions = await worker.request("GET", "/api/v1/auth/sessions", { token: login.json.access_token });
    const current = sessions.json.sessions.find((session) => session.current);
    assert.deepEqual([current.colo, current.country], ["AMS", "NL"]);
  });
});
