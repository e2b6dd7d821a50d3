// The PostgreSQL backend when its server goes away and comes back: every answer meanwhile is
// a 503 problem (never a 500 or a hang), /api/health names the backend and says it is down,
// and the Worker recovers on its own once the server is back. Runs on its own throw-away
// server (whatever TEST_DATABASE says), so stopping it disturbs no other suite.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertProblem } from "./helpers.mjs";
import { startPostgres } from "../scripts/postgres.mjs";

let server;
let worker;

before(async () => {
  server = await startPostgres({ databaseUrl: null });
  worker = await startWorker({
    database: false,
    vars: { DATABASE: "postgres" },
    options: { hyperdrives: { HYPERDRIVE: server.url } },
  });
});

after(async () => {
  await worker?.dispose();
  await server?.stop();
});

test("a stopped server is a 503 on every path; the service recovers once it is back", async () => {
  const healthy = await worker.request("GET", "/api/health");
  assert.equal(healthy.status, 200, healthy.text);
  assert.equal(healthy.json.backend, "postgres");
  const account = await worker.signup();
  const { password } = account;

  await server.pause();
  try {
    const health = await worker.request("GET", "/api/health");
    assert.equal(health.status, 503, health.text);
    assert.deepEqual([health.json.status, health.json.database, health.json.backend], ["unhealthy", "disconnected", "postgres"]);
    const started = Date.now();
    const attempts = [
      worker.request("POST", "/api/v1/auth/login", { body: { username: account.username, password } }),
      worker.request("GET", "/api/v1/users/me", { token: account.access_token }),
      worker.request("POST", "/api/v1/auth/signup", {
        body: { username: "during_outage", password: "another fine passphrase" },
      }),
    ];
    for (const response of await Promise.all(attempts)) {
      assertProblem(assert, response, 503);
      assert.doesNotMatch(response.text, /postgres|ECONNREFUSED|tokio/i, "no driver text reaches the client");
    }
    assert.ok(Date.now() - started < 20_000, "refused promptly, no hang");
  } finally {
    await server.resume();
  }

  const back = await worker.request("GET", "/api/health");
  assert.equal(back.status, 200, back.text);
  const login = await worker.request("POST", "/api/v1/auth/login", { body: { username: account.username, password } });
  assert.equal(login.status, 200, login.text);
  const absent = await worker.request("POST", "/api/v1/auth/login", {
    body: { username: "during_outage", password: "another fine passphrase" },
  });
  assert.equal(absent.status, 401, "the signup refused during the outage wrote nothing");
});
