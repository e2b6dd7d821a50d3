// Errors as clients and operators see them: conflicts carry a code that tells their cases
// apart, and a dependency's own error text is logged once by the edge, with the request id,
// and never sent to the client.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertProblem, uniqueName, sleep, STRONG_PASSWORD } from "./helpers.mjs";

/** The JSON log lines of one request, waiting a moment for workerd's stdout to arrive. */
async function linesOf(worker, requestId, event) {
  for (let wait = 0; wait < 100; wait += 1) {
    const lines = worker.events().filter((line) => line.request_id === requestId && line.event === event);
    if (lines.length > 0) return lines;
    await sleep(20);
  }
  return [];
}

describe("conflict codes", () => {
  let worker;
  before(async () => {
    worker = await startWorker();
  });
  after(() => worker.dispose());

  test("a taken username and a taken email are told apart by their code", async () => {
    const owner = await worker.signup({ email: `${uniqueName("owner")}@example.com` });
    const username = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username: owner.username, password: STRONG_PASSWORD },
    });
    assert.equal(assertProblem(assert, username, 409).type, "urn:edge-auth:problem:username_taken");
    const email = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username: uniqueName(), email: owner.user.email, password: STRONG_PASSWORD },
    });
    assert.equal(assertProblem(assert, email, 409).type, "urn:edge-auth:problem:email_taken");
  });

  test("an admin acting on their own account gets self_action_refused", async () => {
    const admin = await worker.admin();
    const response = await worker.request("DELETE", `/api/v1/admin/users/${admin.user.id}`, {
      token: admin.access_token,
    });
    assert.equal(assertProblem(assert, response, 409).type, "urn:edge-auth:problem:self_action_refused");
  });
});

describe("internal causes", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ database: false });
  });
  after(() => worker.dispose());

  test("a database failure is one log line with the request id and its cause; the body says only what failed", async () => {
    const response = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username: uniqueName(), password: STRONG_PASSWORD },
    });
    const body = assertProblem(assert, response, 503);
    assert.equal(body.detail, "Database is unavailable");
    const requestId = response.headers.get("x-request-id");
    const failures = await linesOf(worker, requestId, "dependency_unavailable");
    assert.equal(failures.length, 1, JSON.stringify(failures));
    const [failure] = failures;
    assert.equal(failure.level, "error");
    assert.equal(failure.dependency, "Database");
    assert.ok(failure.error.length > 0, "the cause is logged");
    assert.ok(!response.text.includes(failure.error), "the cause is not sent");
    // Every line written for the request carries its id: no store writes an anonymous one.
    const anonymous = worker.logs.filter((text) => text.includes('"level":"error"') && !text.includes('"request_id"'));
    assert.deepEqual(anonymous, []);
  });
});
