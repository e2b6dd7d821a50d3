// Edge behaviour shared by every route: health, headers, request ids, trusted hosts, CORS,
// unknown routes and methods, and failing closed on missing configuration or storage.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, assertProblem, assertEdgeHeaders, readResponse, sleep } from "./helpers.mjs";

describe("health and edge headers", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { ALLOWED_ORIGINS: "https://app.example" } });
  });
  after(() => worker.dispose());

  for (const path of ["/api/health", "/health"]) {
    test(`${path} reports a connected database`, async () => {
      const response = await worker.request("GET", path);
      assert.equal(response.status, 200);
      assert.equal(response.json.status, "healthy");
      assert.equal(response.json.database, "connected");
      assert.match(response.json.version, /^\d+\.\d+\.\d+$/);
      assert.match(response.json.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assertEdgeHeaders(assert, response);
      assert.equal(response.headers.get("cache-control"), "no-store");
    });
  }

  test("a new request id is a UUID when none is sent", async () => {
    const response = await worker.request("GET", "/api/health");
    assert.match(
      response.headers.get("x-request-id"),
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  test("a well-formed incoming request id is echoed, an odd one replaced", async () => {
    const echoed = await worker.request("GET", "/api/health", {
      headers: { "x-request-id": "trace-1234.abc" },
    });
    assert.equal(echoed.headers.get("x-request-id"), "trace-1234.abc");
    const replaced = await worker.request("GET", "/api/health", {
      headers: { "x-request-id": "<script>" + "x".repeat(200) },
    });
    assert.notEqual(replaced.headers.get("x-request-id"), "<script>" + "x".repeat(200));
    assert.match(replaced.headers.get("x-request-id"), /^[0-9a-f-]{36}$/);
  });

  test("unknown routes are a 404 problem with every edge header", async () => {
    const response = await worker.request("GET", "/api/v1/nope");
    const body = assertProblem(assert, response, 404);
    assert.equal(body.detail, "Not found");
    assertEdgeHeaders(assert, response);
  });

  test("a known route with the wrong method is a 405 naming the allowed methods", async () => {
    const response = await worker.request("GET", "/api/v1/auth/login");
    assertProblem(assert, response, 405);
    assert.equal(response.headers.get("allow"), "POST, OPTIONS");
  });

  test("an untrusted Host is refused before any route runs", async () => {
    const response = await worker.mf.dispatchFetch("http://evil.example/api/health");
    const body = assertProblem(assert, await readResponse(response), 400);
    assert.equal(body.detail, "Invalid host header");
  });

  test("CORS preflight from an allowed origin is granted", async () => {
    const response = await worker.fetch("/api/v1/auth/login", {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    assert.equal(response.status, 204);
    assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(response.headers.get("access-control-allow-methods"), /POST/);
    assert.match(response.headers.get("access-control-allow-headers"), /Authorization/);
    assert.match(response.headers.get("vary"), /Origin/);
  });

  test("CORS grants nothing to an origin that is not listed", async () => {
    const preflight = await worker.fetch("/api/v1/auth/login", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.headers.get("access-control-allow-origin"), null);
    const simple = await worker.request("GET", "/api/health", {
      headers: { origin: "https://evil.example" },
    });
    assert.equal(simple.headers.get("access-control-allow-origin"), null);
  });

  test("actual requests from an allowed origin expose the request id", async () => {
    const response = await worker.request("GET", "/api/health", {
      headers: { origin: "https://app.example" },
    });
    assert.equal(response.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(response.headers.get("access-control-expose-headers"), /X-Request-ID/);
  });

  test("every request leaves one JSON access log line with its request id", async () => {
    const response = await worker.request("GET", "/api/health", {
      headers: { "x-request-id": "log-check-1" },
    });
    assert.equal(response.status, 200);
    await sleep(100);
    const lines = worker.events().filter((line) => line.request_id === "log-check-1" && line.event === "request");
    assert.equal(lines.length, 1);
    assert.equal(lines[0].route, "/api/health");
    assert.equal(lines[0].status, 200);
    assert.equal(lines[0].method, "GET");
    assert.equal(typeof lines[0].duration_ms, "number");
  });
});

describe("failing closed", () => {
  test("without a signing key every route answers a configuration error, naming no secret", async () => {
    const worker = await startWorker({ vars: { JWT_SIGNING_KEY: undefined } });
    try {
      for (const path of ["/api/health", "/.well-known/jwks.json", "/api/v1/auth/login"]) {
        const response = await worker.request(path === "/api/v1/auth/login" ? "POST" : "GET", path, {
          body: path === "/api/v1/auth/login" ? { username: "a", password: "b" } : undefined,
        });
        const body = assertProblem(assert, response, 500);
        assert.equal(body.detail, "The service is not configured correctly");
        assertEdgeHeaders(assert, response);
      }
      await sleep(100);
      assert.ok(
        worker.logs.some((line) => line.includes("JWT_SIGNING_KEY is not set")),
        "the operator's log names the missing setting",
      );
    } finally {
      await worker.dispose();
    }
  });

  test("a malformed signing key is refused the same way", async () => {
    const worker = await startWorker({ vars: { JWT_SIGNING_KEY: "bm90LWEta2V5" } });
    try {
      const response = await worker.request("GET", "/.well-known/jwks.json");
      assertProblem(assert, response, 500);
      assert.ok(!response.text.includes("bm90LWEta2V5"));
    } finally {
      await worker.dispose();
    }
  });

  test("without allowed hosts the Worker answers no host at all", async () => {
    const worker = await startWorker({ vars: { ALLOWED_HOSTS: undefined } });
    try {
      assertProblem(assert, await worker.request("GET", "/api/health"), 500);
    } finally {
      await worker.dispose();
    }
  });

  test("DATABASE=postgres without its Hyperdrive binding is a configuration error", async () => {
    const worker = await startWorker({ vars: { DATABASE: "postgres" }, options: { hyperdrives: {} } });
    try {
      const health = await worker.request("GET", "/api/health");
      const body = assertProblem(assert, health, 500);
      assert.equal(body.type, "urn:edge-auth:problem:misconfigured");
      assert.ok(worker.logs.some((line) => line.includes("DATABASE=postgres needs the Hyperdrive binding HYPERDRIVE")));
      const typo = await startWorker({ vars: { DATABASE: "postgresql" } });
      try {
        assertProblem(assert, await typo.request("GET", "/api/health"), 500);
        assert.ok(typo.logs.some((line) => line.includes("DATABASE must be d1 or postgres")));
      } finally {
        await typo.dispose();
      }
    } finally {
      await worker.dispose();
    }
  });

  test("health is 503 and writes fail with 503 when the database is unreachable", async () => {
    const worker = await startWorker({ database: false });
    try {
      const health = await worker.request("GET", "/api/health");
      assert.equal(health.status, 503);
      assert.equal(health.json.status, "unhealthy");
      assert.equal(health.json.database, "disconnected");
      const signup = await worker.request("POST", "/api/v1/auth/signup", {
        body: { username: "nodb_user", password: "correct horse battery" },
      });
      const body = assertProblem(assert, signup, 503);
      assert.equal(body.detail, "Database is unavailable");
    } finally {
      await worker.dispose();
    }
  });
});

describe("rate limiter durable object", () => {
  let worker;
  before(async () => {
    worker = await startWorker({ vars: { RATE_LIMIT_SIGNUP: "3/60" } });
  });
  after(() => worker.dispose());

  test("limited routes carry RateLimit headers and the budget is per client IP", async () => {
    const headers = { "cf-connecting-ip": "198.51.100.20" };
    const remaining = [];
    for (let i = 0; i < 3; i += 1) {
      // Invalid bodies still count: the limiter runs before any parsing or hashing.
      const response = await worker.request("POST", "/api/v1/auth/signup", { body: {}, headers });
      assert.equal(response.status, 422);
      assert.equal(response.headers.get("ratelimit-limit"), "3");
      remaining.push(response.headers.get("ratelimit-remaining"));
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const limited = await worker.request("POST", "/api/v1/auth/signup", { body: {}, headers });
    const body = assertProblem(assert, limited, 429);
    assert.match(body.detail, /retry in \d+ seconds/);
    assert.ok(Number(limited.headers.get("retry-after")) >= 1);
    const other = await worker.request("POST", "/api/v1/auth/signup", {
      body: {},
      headers: { "cf-connecting-ip": "198.51.100.21" },
    });
    assert.equal(other.status, 422);
  });
});
