// /metrics: counts after a real flow read back through a real Prometheus text parser, the
// scrape token and the fail-closed default, per-isolate batching in front of the
// MetricsAggregator Durable Object, and totals that outlive a restart.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getMetricsFromIterator } from "prom2javascript";
import {
  startWorker,
  startHttpProvider,
  assertProblem,
  assertUnauthorized,
  uniqueName,
  sleep,
  STRONG_PASSWORD,
} from "./helpers.mjs";

const DURATION = "edge_auth_http_request_duration_seconds";
const BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];

/** Scrape and parse; fails the test unless the answer is 200 Prometheus text. */
async function scrape(worker, token) {
  const response = await worker.request("GET", "/metrics", { token });
  assert.equal(response.status, 200, response.text);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  // The parser throws on any line it cannot read and on a histogram whose +Inf bucket is
  // not its _count.
  return getMetricsFromIterator(response.text.split("\n")[Symbol.iterator]());
}

/** The value of one counter series; 0 when the series is absent. */
function value(metrics, name, labels = {}) {
  const family = metrics[name];
  assert.ok(family, `${name} is exposed`);
  const match = family.data.find((series) => sameLabels(series.labels, labels));
  return match ? match.value : 0;
}

function sameLabels(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/** `{ "route status": value }` of every request-counter series. */
function requestCounts(metrics) {
  return Object.fromEntries(
    metrics.edge_auth_http_requests_total.data.map((series) => [
      `${series.labels.route} ${series.labels.status}`,
      series.value,
    ]),
  );
}

/** The aggregator's totals read straight from the Durable Object, flushing nothing. */
async function aggregatorTotals(worker) {
  const namespace = await worker.mf.getDurableObjectNamespace("METRICS");
  const stub = namespace.get(namespace.idFromName("global"));
  const response = await stub.fetch("https://metrics/merge?read", { method: "POST", body: "{}" });
  assert.equal(response.status, 200);
  return response.json();
}

/** Requests the aggregator has counted for a route, over all statuses. */
function storedRequests(totals, route) {
  return totals.counters
    .filter(([series]) => series.counter === "http_requests")
    .filter(([series]) => series.labels.some(([name, v]) => name === "route" && v === route))
    .reduce((sum, [, count]) => sum + count, 0);
}

describe("counts after a flow", () => {
  let worker;
  let metrics;
  before(async () => {
    worker = await startWorker({
      vars: {
        ENVIRONMENT: "development",
        EMAIL_PROVIDER: "outbox",
        PUBLIC_BASE_URL: "https://auth.test",
        RATE_LIMIT_SIGNUP: "3/60",
        REFRESH_GRACE_SECONDS: "0",
        // No background flush: the scrape alone moves the counts, so they are exact.
        METRICS_FLUSH_SECONDS: "3600",
      },
    });
    const alice = await worker.signup({ email: `${uniqueName("alice")}@example.com` });
    await worker.signup();
    await worker.signup();
    const limited = await worker.request("POST", "/api/v1/auth/signup", {
      body: { username: uniqueName(), password: STRONG_PASSWORD },
    });
    assertProblem(assert, limited, 429);
    const wrong = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: alice.username, password: "not the password at all" },
    });
    assertUnauthorized(assert, wrong);
    await worker.login(alice.username);
    const rotated = await worker.request("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: alice.refresh_token },
    });
    assert.equal(rotated.status, 200, rotated.text);
    await sleep(1100); // past the zero-second grace window: the old token is now reuse
    const reused = await worker.request("POST", "/api/v1/auth/refresh", {
      body: { refresh_token: alice.refresh_token },
    });
    assertUnauthorized(assert, reused);
    assert.equal((await worker.send("/no/such/path")).status, 404);
    metrics = await scrape(worker);
  });
  after(() => worker.dispose());

  test("every family has HELP and TYPE; counters end in _total", () => {
    const types = Object.fromEntries(Object.entries(metrics).map(([name, m]) => [name, m.type]));
    assert.deepEqual(types, {
      edge_auth_http_requests_total: "counter",
      [DURATION]: "histogram",
      edge_auth_signups_total: "counter",
      edge_auth_logins_total: "counter",
      edge_auth_token_refreshes_total: "counter",
      edge_auth_refresh_token_reuse_total: "counter",
      edge_auth_rate_limited_total: "counter",
      edge_auth_emails_sent_total: "counter",
      edge_auth_emails_failed_total: "counter",
      edge_auth_oauth_sign_ins_total: "counter",
      edge_auth_mfa_total: "counter",
      edge_auth_passkey_total: "counter",
    });
    for (const [name, family] of Object.entries(metrics)) {
      assert.ok(family.help && family.help.length > 10, `${name} has a HELP text`);
    }
  });

  test("auth events are counted exactly", () => {
    assert.equal(value(metrics, "edge_auth_signups_total"), 3);
    assert.equal(value(metrics, "edge_auth_logins_total", { result: "success" }), 1);
    assert.equal(value(metrics, "edge_auth_logins_total", { result: "failure" }), 1);
    assert.equal(value(metrics, "edge_auth_token_refreshes_total"), 1);
    assert.equal(value(metrics, "edge_auth_refresh_token_reuse_total"), 1);
    assert.deepEqual(
      metrics.edge_auth_rate_limited_total.data.map((series) => [series.labels, series.value]),
      [[{ scope: "signup" }, 1]],
    );
    assert.equal(value(metrics, "edge_auth_emails_sent_total"), 1, "alice's verification email");
    assert.equal(value(metrics, "edge_auth_emails_failed_total"), 0);
  });

  test("requests are counted by route pattern and status; unknown paths as -", () => {
    assert.deepEqual(requestCounts(metrics), {
      "/api/v1/auth/signup 201": 3,
      "/api/v1/auth/signup 429": 1,
      "/api/v1/auth/login 401": 1,
      "/api/v1/auth/login 200": 1,
      "/api/v1/auth/refresh 200": 1,
      "/api/v1/auth/refresh 401": 1,
      "- 404": 1,
    });
  });

  test("latency buckets are cumulative and _count equals the requests of the route", () => {
    const histograms = metrics[DURATION].data;
    assert.deepEqual(
      histograms.map((h) => h.labels.route).sort(),
      ["-", "/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/signup"],
    );
    const counts = requestCounts(metrics);
    for (const histogram of histograms) {
      const route = histogram.labels.route;
      assert.deepEqual(Object.keys(histogram.buckets).sort(), [...BUCKETS].sort(), route);
      const cumulative = BUCKETS.map((le) => histogram.buckets[le]);
      for (let i = 1; i < cumulative.length; i += 1) {
        assert.ok(cumulative[i - 1] <= cumulative[i], `${route}: ${cumulative}`);
      }
      const requests = Object.entries(counts)
        .filter(([key]) => key.startsWith(`${route} `))
        .reduce((sum, [, n]) => sum + n, 0);
      assert.equal(histogram.count, requests, route);
      assert.equal(histogram.buckets["+Inf"], requests, route);
      assert.ok(histogram.sum >= 0 && histogram.sum < 60, `${route} sum ${histogram.sum}`);
    }
  });

  test("a scrape counts in the next one, and nothing is counted twice", async () => {
    const again = await scrape(worker);
    const counts = requestCounts(again);
    assert.equal(counts["/metrics 200"], 1);
    assert.equal(counts["/api/v1/auth/signup 201"], 3);
    assert.equal(value(again, "edge_auth_signups_total"), 3);
    assert.equal(again[DURATION].data.find((h) => h.labels.route === "/metrics").count, 1);
  });
});

describe("scrape access", () => {
  const TOKEN = "prom-scrape-token-0123456789abcdef";

  test("with METRICS_TOKEN set, only that bearer token reads the metrics", async () => {
    const worker = await startWorker({
      vars: { ENVIRONMENT: "production", METRICS_TOKEN: TOKEN },
    });
    try {
      const missing = await worker.request("GET", "/metrics");
      assertUnauthorized(assert, missing, "A valid metrics token is required");
      assert.doesNotMatch(missing.text, /edge_auth_/);
      for (const token of [`${TOKEN}x`, TOKEN.slice(0, -1), "x"]) {
        assertUnauthorized(assert, await worker.request("GET", "/metrics", { token }));
      }
      const basic = await worker.request("GET", "/metrics", {
        headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` },
      });
      assertUnauthorized(assert, basic);
      const metrics = await scrape(worker, TOKEN);
      assert.deepEqual(requestCounts(metrics), { "/metrics 401": 5 }, "the refusals were counted");
    } finally {
      await worker.dispose();
    }
  });

  test("the token is required in test too, once it is set", async () => {
    const worker = await startWorker({ vars: { METRICS_TOKEN: TOKEN } });
    try {
      assertUnauthorized(assert, await worker.request("GET", "/metrics"));
      await scrape(worker, TOKEN);
    } finally {
      await worker.dispose();
    }
  });

  test("without METRICS_TOKEN, production and other environments answer 404", async () => {
    for (const environment of ["production", "staging"]) {
      const worker = await startWorker({ vars: { ENVIRONMENT: environment } });
      try {
        for (const token of [undefined, TOKEN]) {
          const response = await worker.request("GET", "/metrics", { token });
          const body = assertProblem(assert, response, 404);
          assert.equal(body.type, "urn:edge-auth:problem:not_found");
          assert.doesNotMatch(response.text, /edge_auth_/);
        }
      } finally {
        await worker.dispose();
      }
    }
  });
});

describe("per-isolate batching", () => {
  test("requests do not reach the aggregator until the scrape flushes them", async () => {
    const worker = await startWorker({ vars: { METRICS_FLUSH_SECONDS: "3600" } });
    try {
      for (let i = 0; i < 5; i += 1) {
        assert.equal((await worker.send("/api/ping")).status, 200);
      }
      await sleep(200); // room for any background flush that should not happen
      assert.equal(storedRequests(await aggregatorTotals(worker), "/api/ping"), 0);
      const metrics = await scrape(worker);
      assert.equal(value(metrics, "edge_auth_http_requests_total", { route: "/api/ping", status: "200" }), 5);
      assert.equal(storedRequests(await aggregatorTotals(worker), "/api/ping"), 5);
    } finally {
      await worker.dispose();
    }
  });

  test("after METRICS_FLUSH_SECONDS, the next response sends the batch in the background", async () => {
    const worker = await startWorker({ vars: { METRICS_FLUSH_SECONDS: "1" } });
    try {
      assert.equal((await worker.send("/api/ping")).status, 200);
      await sleep(200);
      assert.equal(storedRequests(await aggregatorTotals(worker), "/api/ping"), 0, "not due yet");
      await sleep(1000);
      assert.equal((await worker.send("/api/ping")).status, 200);
      let stored = 0;
      for (let i = 0; i < 100 && stored < 2; i += 1) {
        await sleep(50);
        stored = storedRequests(await aggregatorTotals(worker), "/api/ping");
      }
      assert.equal(stored, 2, "both pings, with no scrape");
    } finally {
      await worker.dispose();
    }
  });

  test("without its aggregator, requests still succeed and the scrape says 503", async () => {
    const worker = await startWorker({
      vars: { METRICS_FLUSH_SECONDS: "1" },
      options: {
        durableObjects: {
          RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
          SESSION_GUARD: { className: "SessionGuard", useSQLite: true },
        },
      },
    });
    try {
      assert.equal((await worker.send("/api/ping")).status, 200);
      await sleep(1100);
      for (let i = 0; i < 3; i += 1) {
        assert.equal((await worker.send("/api/ping")).status, 200, "a failed flush stays invisible");
      }
      const body = assertProblem(assert, await worker.send("/metrics"), 503);
      assert.equal(body.detail, "Metrics store is unavailable");
      const flushFailed = () => worker.logs.some((line) => line.includes('"metrics_flush_failed"'));
      for (let i = 0; i < 100 && !flushFailed(); i += 1) await sleep(50);
      assert.ok(flushFailed());
      const failure = JSON.parse(worker.logs.find((line) => line.includes('"metrics_flush_failed"')));
      assert.match(failure.request_id, /^[0-9a-f-]{36}$/, "joined to the request that triggered it");
    } finally {
      await worker.dispose();
    }
  });
});

test("totals live in Durable Object storage and survive a restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "edge-auth-metrics-"));
  const options = { durableObjectsPersist: dir };
  try {
    const first = await startWorker({ vars: { METRICS_FLUSH_SECONDS: "3600" }, options });
    for (let i = 0; i < 3; i += 1) await first.send("/api/ping");
    await scrape(first);
    await first.dispose();

    const second = await startWorker({ vars: { METRICS_FLUSH_SECONDS: "3600" }, options });
    try {
      await second.send("/api/ping");
      const metrics = await scrape(second);
      assert.equal(value(metrics, "edge_auth_http_requests_total", { route: "/api/ping", status: "200" }), 4);
    } finally {
      await second.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("email delivery", () => {
  let provider;
  let worker;
  before(async () => {
    provider = await startHttpProvider();
    worker = await startWorker({
      vars: {
        EMAIL_PROVIDER: "http",
        EMAIL_HTTP_URL: provider.url,
        EMAIL_HTTP_KEY: "key",
        EMAIL_FROM: "Acme <no-reply@acme.test>",
        PUBLIC_BASE_URL: "https://auth.acme.test",
        METRICS_FLUSH_SECONDS: "3600",
      },
    });
  });
  after(async () => {
    await worker.dispose();
    await provider.close();
  });

  /** Scrape until `name` reaches `expected` (the Worker records it in `wait_until`, after
   * the provider answered), for up to 5 s; returns the last scrape. */
  async function scrapeWhen(name, expected) {
    let metrics = await scrape(worker);
    for (let i = 0; i < 100 && value(metrics, name) !== expected; i += 1) {
      await sleep(50);
      metrics = await scrape(worker);
    }
    return metrics;
  }

  test("a delivered message counts as sent, one that fails every retry as failed", async () => {
    await worker.signup({ email: `${uniqueName("sent")}@example.com` });
    await provider.waitForRequests(1);
    let metrics = await scrapeWhen("edge_auth_emails_sent_total", 1);
    assert.equal(value(metrics, "edge_auth_emails_sent_total"), 1);
    assert.equal(value(metrics, "edge_auth_emails_failed_total"), 0);

    provider.failuresLeft = 3;
    await worker.signup({ email: `${uniqueName("lost")}@example.com` });
    await provider.waitForRequests(4);
    metrics = await scrapeWhen("edge_auth_emails_failed_total", 1);
    assert.equal(value(metrics, "edge_auth_emails_sent_total"), 1);
    assert.equal(value(metrics, "edge_auth_emails_failed_total"), 1, "one message, not one per attempt");
  });
});
