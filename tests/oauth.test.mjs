// Sign-in with a provider, end to end: the Worker in workerd against a real OpenID Connect
// provider (oidc-provider, RS256 and ES256 clients) and a GitHub stand-in, a browser played
// by following redirects. Covers the state and its cookie, the one-time code and the app's
// PKCE, every id_token refusal, the redirect allow-list, the account rules (link by verified
// email, link_required, a new account), linking while signed in, unlinking, bans, rate
// limits, metrics, audit and the log. See tests/providers.mjs for the providers.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, SignJWT } from "jose";
import { getMetricsFromIterator } from "prom2javascript";
import { startWorker, assertProblem, readResponse, uniqueName, address, sleep, STRONG_PASSWORD } from "./helpers.mjs";
import { startOidcProvider, startGithubStandIn, PUBLIC_BASE_URL } from "./providers.mjs";

const APP = "https://app.test/callback";
const COOKIE = "__Host-edge-auth-oauth";
const ADMIN = "/api/v1/admin";
const secret = (name) => `${name}-secret-${randomBytes(12).toString("hex")}`;
const ACME = { name: "acme", client_id: "acme-client", client_secret: secret("acme") };
const EC = { name: "ec", client_id: "ec-client", client_secret: secret("ec"), alg: "ES256" };
const GITHUB = { client_id: "github-client", client_secret: secret("github") };

/** A PKCE verifier and its S256 challenge, as an app makes them. */
function pkce() {
  const verifier = randomBytes(32).toString("base64url");
  return { verifier, challenge: createHash("sha256").update(verifier).digest("base64url") };
}

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort() {
  const probe = createServer();
  await new Promise((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address();
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Sign `claims` under `header` with a private JWK (or jose key). */
async function sign(header, claims, key) {
  const usable = key.kty ? await importJWK(key, header.alg) : key;
  return new SignJWT(claims).setProtectedHeader(header).sign(usable);
}

/**
 * The providers and a Worker that knows them (`acme` RS256 and `ec` ES256 at one OpenID
 * provider, `github` at the stand-in); `vars` add to or override the Worker's settings
 * (a function of the providers when it needs their URLs).
 */
async function startAll(vars = {}) {
  const oidc = await startOidcProvider({ clients: [ACME, EC] });
  const github = await startGithubStandIn(GITHUB);
  if (typeof vars === "function") vars = vars(oidc, github);
  const worker = await startWorker({
    vars: {
      PUBLIC_BASE_URL,
      ALLOWED_REDIRECT_URLS: APP,
      OAUTH_PROVIDERS: "acme,ec,github",
      OAUTH_ACME_CLIENT_ID: ACME.client_id,
      OAUTH_ACME_CLIENT_SECRET: ACME.client_secret,
      OAUTH_ACME_ISSUER: oidc.issuer,
      OAUTH_EC_CLIENT_ID: EC.client_id,
      OAUTH_EC_CLIENT_SECRET: EC.client_secret,
      OAUTH_EC_ISSUER: oidc.issuer,
      OAUTH_GITHUB_CLIENT_ID: GITHUB.client_id,
      OAUTH_GITHUB_CLIENT_SECRET: GITHUB.client_secret,
      OAUTH_GITHUB_WEB_URL: github.web,
      OAUTH_GITHUB_API_URL: github.api,
      ...vars,
    },
  });
  const env = new Flows(worker, oidc, github);
  env.close = async () => {
    await worker.dispose();
    await oidc.close();
    await github.close();
  };
  return env;
}

/** The browser's side of the flows, on one Worker and its providers. */
class Flows {
  constructor(worker, oidc, github) {
    this.worker = worker;
    this.oidc = oidc;
    this.github = github;
  }

  /** GET a path of the Worker without following redirects, read as `readResponse` does. */
  async get(path, headers = {}) {
    return readResponse(await this.worker.fetch(path, { redirect: "manual", headers }));
  }

  /**
   * `GET /api/v1/auth/oauth/{provider}/start` with `query`; asserts the redirect to the
   * provider and the cookie; returns `{ location, cookie, state, response }`.
   */
  async start(provider, query = { redirect_to: APP }) {
    const response = await this.get(`/api/v1/auth/oauth/${provider}/start?${new URLSearchParams(query)}`);
    return this.started(response);
  }

  /** Check a start's answer (a redirect to the provider with the cookie); see `start`. */
  started(response) {
    assert.equal(response.status, 302, response.text);
    const cookie = parseCookie(response.headers.get("set-cookie"));
    assert.equal(cookie.attributes, "Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600");
    assert.match(cookie.value, /^[A-Za-z0-9_-]{20,}$/);
    assert.match(response.headers.get("cache-control") ?? "", /no-store/);
    const location = response.headers.get("location");
    const state = new URL(location).searchParams.get("state");
    return { location, cookie: cookie.value, state, response };
  }

  /** The provider's side: follow `location` back to the Worker's callback URL. */
  async drive(provider, location, account) {
    return provider === "github" ? this.github.drive(location) : this.oidc.drive(location, account);
  }

  /**
   * Replay the provider's redirect to `callbackUrl` (under PUBLIC_BASE_URL) at the Worker,
   * with the cookie when given; returns the response.
   */
  async callback(callbackUrl, cookie) {
    const url = new URL(callbackUrl);
    assert.equal(url.origin, PUBLIC_BASE_URL, `the provider sends the browser to the Worker: ${callbackUrl}`);
    return this.get(url.pathname + url.search, cookie === undefined ? {} : { cookie: `${COOKIE}=${cookie}` });
  }

  /**
   * A whole sign-in through `provider` as `account` (OpenID providers; GitHub's account is
   * set on the stand-in): start, provider, callback. Returns the query the browser brings
   * back to `redirect_to` (`params`) and every value met on the way.
   */
  async signIn(provider, account, { query = { redirect_to: APP } } = {}) {
    const started = await this.start(provider, query);
    const callbackUrl = await this.drive(provider, started.location, account);
    const response = await this.callback(callbackUrl, started.cookie);
    const params = backAt(response, query.redirect_to);
    const providerCode = new URL(callbackUrl).searchParams.get("code");
    return { ...started, callbackUrl, providerCode, params, callbackResponse: response };
  }

  /** `POST /api/v1/auth/oauth/exchange`; returns the response. */
  exchange(code, codeVerifier) {
    const body = codeVerifier === undefined ? { code } : { code, code_verifier: codeVerifier };
    return this.worker.request("POST", "/api/v1/auth/oauth/exchange", { body });
  }

  /** A sign-in that must succeed: returns the token answer of the exchange and the flow. */
  async tokensFor(provider, account) {
    const flow = await this.signIn(provider, account);
    assert.equal(flow.params.get("error"), null, `no error: ${flow.params}`);
    const exchanged = await this.exchange(flow.params.get("code"));
    assert.equal(exchanged.status, 200, exchanged.text);
    return { ...exchanged.json, flow };
  }

  /** The caller's account (`GET /users/me`), asserting 200. */
  async me(accessToken) {
    const response = await this.worker.me(accessToken);
    assert.equal(response.status, 200, response.text);
    return response.json;
  }

  /** The caller's identities, asserting 200. */
  async identities(accessToken) {
    const response = await this.worker.request("GET", "/api/v1/users/me/identities", { token: accessToken });
    assert.equal(response.status, 200, response.text);
    return response.json.identities;
  }

  /**
   * The browser's part of linking `provider` to the signed-in account of `accessToken` as
   * `account`: the app asks for the URL (with `body`'s extras), the browser follows it, the
   * provider, the callback. Returns the query brought back to APP, the ticket URL and the
   * flow; the app then completes the link with `completeLink`.
   */
  async link(accessToken, provider, account, body = {}) {
    const asked = await this.worker.request("POST", `/api/v1/users/me/identities/${provider}/start`, {
      token: accessToken,
      body: { redirect_to: APP, ...body },
    });
    assert.equal(asked.status, 200, asked.text);
    const url = new URL(asked.json.url);
    assert.equal(url.origin + url.pathname, `${PUBLIC_BASE_URL}/api/v1/auth/oauth/${provider}/start`);
    assert.deepEqual([...url.searchParams.keys()], ["link_ticket"]);
    const started = this.started(await this.get(url.pathname + url.search));
    const callbackUrl = await this.drive(provider, started.location, account);
    const response = await this.callback(callbackUrl, started.cookie);
    const providerCode = new URL(callbackUrl).searchParams.get("code");
    return { ...started, params: backAt(response, APP), ticketUrl: url, callbackUrl, providerCode };
  }

  /** `POST /api/v1/users/me/identities` with the callback's code; returns the response. */
  completeLink(accessToken, code, codeVerifier) {
    const body = codeVerifier === undefined ? { code } : { code, code_verifier: codeVerifier };
    return this.worker.request("POST", "/api/v1/users/me/identities", { token: accessToken, body });
  }

  /** A whole link that must succeed; returns the identity the completion answers with. */
  async linked(accessToken, provider, account) {
    const flow = await this.link(accessToken, provider, account);
    const completed = await this.completeLink(accessToken, flow.params.get("code"));
    assert.equal(completed.status, 201, completed.text);
    return completed.json;
  }
}

/** `name=value; attributes` of the oauth cookie in a set-cookie header. */
function parseCookie(header) {
  assert.ok(header, "a set-cookie header");
  const match = new RegExp(`^${COOKIE}=([^;]*); (.*)$`).exec(header);
  assert.ok(match, `the ${COOKIE} cookie: ${header}`);
  return { value: match[1], attributes: match[2] };
}

/** Assert a redirect back to `redirectTo` (default APP), its own query kept; returns the query. */
function backAt(response, redirectTo = APP) {
  assert.equal(response.status, 302, response.text);
  const location = new URL(response.headers.get("location"));
  const expected = new URL(redirectTo);
  assert.equal(location.origin + location.pathname, expected.origin + expected.pathname, `back at ${redirectTo}: ${location}`);
  for (const [name, value] of expected.searchParams) assert.equal(location.searchParams.get(name), value);
  return location.searchParams;
}

/** An account at the OpenID provider no other test uses. */
function person(overrides = {}) {
  const sub = `sub-${randomBytes(8).toString("hex")}`;
  return { sub, email: address("oidc"), email_verified: true, name: "Pat Provider", ...overrides };
}

/** A local account with a password and `email`, marked verified by an admin when `verified`. */
async function localAccount(env, admin, { email, verified }) {
  const account = await env.worker.signup({ email });
  if (verified) {
    const patched = await env.worker.request("PATCH", `${ADMIN}/users/${account.user.id}`, {
      token: admin.access_token,
      body: { email_verified: true },
    });
    assert.equal(patched.status, 200, patched.text);
  }
  return account;
}

/** Scrape /metrics and parse it. */
async function scrape(worker) {
  const response = await worker.request("GET", "/metrics");
  assert.equal(response.status, 200, response.text);
  return getMetricsFromIterator(response.text.split("\n")[Symbol.iterator]());
}

/** A counter's value for exactly `labels`; 0 when absent. */
function counter(metrics, name, labels) {
  const series = metrics[name]?.data.find(
    (entry) =>
      Object.keys(entry.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([key, value]) => entry.labels[key] === value),
  );
  return series ? series.value : 0;
}

describe("sign-in through an OpenID provider", () => {
  let env;
  before(async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    env = await startAll((oidc) => ({
      // `down`: nothing listens at its issuer; `renamed`: the real provider under another
      // name for its issuer (localhost for 127.0.0.1), which its discovery document denies.
      OAUTH_PROVIDERS: "acme,ec,github,down,renamed",
      OAUTH_DOWN_CLIENT_ID: "down-client",
      OAUTH_DOWN_CLIENT_SECRET: secret("down"),
      OAUTH_DOWN_ISSUER: down,
      OAUTH_RENAMED_CLIENT_ID: ACME.client_id,
      OAUTH_RENAMED_CLIENT_SECRET: ACME.client_secret,
      OAUTH_RENAMED_ISSUER: oidc.issuer.replace("127.0.0.1", "localhost"),
    }));
  });
  after(() => env.close());

  for (const [provider, alg] of [
    ["acme", "RS256"],
    ["ec", "ES256"],
  ]) {
    test(`${provider} (${alg}): a new account without a password, signed in through a one-time code`, async () => {
      const account = person();
      const flow = await env.signIn(provider, account);
      // What went to the provider: this sign-in's state, a nonce and the service's own PKCE.
      const authorize = new URL(flow.location);
      assert.equal(authorize.origin, env.oidc.issuer);
      const client = provider === "acme" ? ACME : EC;
      assert.equal(authorize.searchParams.get("client_id"), client.client_id);
      assert.equal(authorize.searchParams.get("redirect_uri"), `${PUBLIC_BASE_URL}/api/v1/auth/oauth/${provider}/callback`);
      assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
      assert.match(authorize.searchParams.get("nonce") ?? "", /^[A-Za-z0-9_-]{20,}$/);
      assert.match(flow.state ?? "", /^[A-Za-z0-9_-]{20,}$/);
      // The id_token really was signed with the algorithm under test.
      const idToken = env.oidc.issued.at(-1);
      assert.equal(JSON.parse(Buffer.from(idToken.split(".")[0], "base64url")).alg, alg);
      // The callback spends the cookie and hands the app a code and nothing else.
      const cleared = parseCookie(flow.callbackResponse.headers.get("set-cookie"));
      assert.equal(cleared.value, "");
      assert.match(cleared.attributes, /Max-Age=0/);
      assert.deepEqual([...flow.params.keys()], ["code"]);
      const exchanged = await env.exchange(flow.params.get("code"));
      assert.equal(exchanged.status, 200, exchanged.text);
      // The same answer as a login's.
      const login = await env.worker.login((await env.worker.signup()).username);
      assert.deepEqual(Object.keys(exchanged.json).sort(), Object.keys(login).sort());
      assert.equal(exchanged.json.token_type, "bearer");
      assert.ok(exchanged.json.expires_in > 0);
      assert.equal(exchanged.json.user.email, account.email);
      const me = await env.me(exchanged.json.access_token);
      assert.equal(me.email, account.email);
      assert.equal(me.email_verified, true);
      assert.match(me.username, /^pat_provider(_\d{4})?$/, "named after the profile's name");
      // No password: not the test password, not an empty one.
      for (const password of [STRONG_PASSWORD, ""]) {
        assert.equal((await env.worker.attemptLogin(me.username, password)).status, 401);
      }
      const [identity] = await env.identities(exchanged.json.access_token);
      assert.equal(identity.provider, provider);
      assert.equal(identity.email, account.email);
    });
  }

  test("the same provider account signs in to the same account again", async () => {
    const account = person();
    const first = await env.tokensFor("acme", account);
    const second = await env.tokensFor("acme", { ...account, email: address("changed"), name: "Renamed" });
    const [a, b] = [await env.me(first.access_token), await env.me(second.access_token)];
    assert.equal(b.id, a.id);
    assert.equal(await env.worker.count("SELECT COUNT(*) AS n FROM users WHERE id = ?1", a.id), 1);
    // The same subject at another provider is another identity: a new account.
    const other = await env.tokensFor("ec", { ...account, email: address("other") });
    assert.notEqual((await env.me(other.access_token)).id, a.id);
  });

  test("a one-time code is spent by its first exchange", async () => {
    const flow = await env.signIn("acme", person());
    const code = flow.params.get("code");
    assert.equal((await env.exchange(code)).status, 200);
    const again = assertProblem(assert, await env.exchange(code), 400);
    assert.match(again.type, /invalid_grant$/);
    const unknown = assertProblem(assert, await env.exchange(randomBytes(32).toString("base64url")), 400);
    assert.match(unknown.type, /invalid_grant$/);
  });

  test("a code whose account was deleted since is an invalid grant", async () => {
    const account = person();
    const tokens = await env.tokensFor("acme", account);
    const pending = await env.signIn("acme", account);
    const deleted = await env.worker.request("DELETE", "/api/v1/users/me", { token: tokens.access_token });
    assert.equal(deleted.status, 204, deleted.text);
    assert.match(assertProblem(assert, await env.exchange(pending.params.get("code")), 400).type, /invalid_grant$/);
    // Its identity went with it: the provider account now makes a new account.
    const again = await env.tokensFor("acme", account);
    assert.notEqual((await env.me(again.access_token)).id, tokens.user.id);
  });

  test("a state lives 10 minutes, a one-time code 60 seconds; expired, each is refused", async () => {
    const lifetimes = async (kind) =>
      (await env.worker.db.query("SELECT expires_at - created_at AS ttl FROM oauth_grants WHERE kind = ?1", kind)).map((row) =>
        Number(row.ttl),
      );
    const expire = (kind) => env.worker.db.run("UPDATE oauth_grants SET expires_at = created_at - 1 WHERE kind = ?1", kind);

    const started = await env.start("acme");
    assert.deepEqual([...new Set(await lifetimes("state"))], [600]);
    const callbackUrl = await env.drive("acme", started.location, person());
    await expire("state");
    assert.match(assertProblem(assert, await env.callback(callbackUrl, started.cookie), 400).type, /invalid_state$/);

    const flow = await env.signIn("acme", person());
    assert.deepEqual([...new Set(await lifetimes("code"))], [60]);
    await expire("code");
    assert.match(assertProblem(assert, await env.exchange(flow.params.get("code")), 400).type, /invalid_grant$/);
  });

  test("a state and a one-time code raced by concurrent requests are spent exactly once", async () => {
    const started = await env.start("acme");
    const callbackUrl = await env.drive("acme", started.location, person());
    const callbacks = await Promise.all(Array.from({ length: 6 }, () => env.callback(callbackUrl, started.cookie)));
    const statuses = callbacks.map((response) => response.status).sort();
    assert.deepEqual(statuses, [302, 400, 400, 400, 400, 400]);
    const code = backAt(callbacks.find((response) => response.status === 302)).get("code");
    const exchanges = await Promise.all(Array.from({ length: 6 }, () => env.exchange(code)));
    assert.deepEqual(exchanges.map((response) => response.status).sort(), [200, 400, 400, 400, 400, 400]);
  });

  test("an app's PKCE: the right verifier redeems, a wrong or missing one burns the code", async () => {
    const withChallenge = ({ challenge }) => ({ redirect_to: APP, code_challenge: challenge, code_challenge_method: "S256" });
    const good = pkce();
    const flow = await env.signIn("acme", person(), { query: withChallenge(good) });
    assert.equal((await env.exchange(flow.params.get("code"), good.verifier)).status, 200);

    for (const attempt of [undefined, pkce().verifier]) {
      const keys = pkce();
      const burned = await env.signIn("acme", person(), { query: withChallenge(keys) });
      const code = burned.params.get("code");
      const refused = assertProblem(assert, await env.exchange(code, attempt), 400);
      assert.match(refused.type, /invalid_grant$/);
      const afterwards = assertProblem(assert, await env.exchange(code, keys.verifier), 400);
      assert.match(afterwards.type, /invalid_grant$/, "the refused attempt spent the code");
    }
  });

  test("a state is refused when unknown, replayed, without its cookie, with another cookie or at another provider", async () => {
    const refused = async (response) => {
      const body = assertProblem(assert, response, 400);
      assert.match(body.type, /invalid_state$/);
    };
    // Unknown.
    await refused(await env.get(`/api/v1/auth/oauth/acme/callback?state=${randomBytes(32).toString("base64url")}&code=x`));
    await refused(await env.get("/api/v1/auth/oauth/acme/callback?code=x"));
    // Replayed after a good sign-in.
    const done = await env.signIn("acme", person());
    assert.ok(done.params.get("code"));
    await refused(await env.callback(done.callbackUrl, done.cookie));
    // Without the cookie, or with another browser's: refused, and the state is burned.
    for (const cookie of [undefined, "another-browsers-cookie-value-000000000000"]) {
      const started = await env.start("acme");
      const callbackUrl = await env.drive("acme", started.location, person());
      await refused(await env.callback(callbackUrl, cookie));
      await refused(await env.callback(callbackUrl, started.cookie));
    }
    // Another provider's state, brought back to this provider's callback.
    const started = await env.start("acme");
    const callbackUrl = new URL(await env.drive("acme", started.location, person()));
    await refused(await env.get(`/api/v1/auth/oauth/ec/callback${callbackUrl.search}`, { cookie: `${COOKIE}=${started.cookie}` }));
  });

  describe("an id_token the Worker must refuse sends the app provider_failed", () => {
    const cases = {
      "signed for another audience": (claims) => (claims.aud = "someone-else"),
      "from another issuer": (claims) => (claims.iss = "http://127.0.0.1:1"),
      "expired": (claims) => {
        claims.iat -= 7200;
        claims.exp = Math.floor(Date.now() / 1000) - 600;
      },
      "issued too long ago, though not expired": (claims) => (claims.iat -= 3600),
      "with another nonce": (claims) => (claims.nonce = randomBytes(16).toString("base64url")),
      "without a nonce": (claims) => delete claims.nonce,
      "for several audiences, without azp": (claims) => (claims.aud = [claims.aud, "someone-else"]),
      "for several audiences, azp naming another": (claims) => {
        claims.aud = [claims.aud, "someone-else"];
        claims.azp = "someone-else";
      },
      "without a subject": (claims) => delete claims.sub,
      "naming a key id the provider's set lacks": (_claims, header) => (header.kid = "no-such-key"),
    };
    for (const [name, tamper] of Object.entries(cases)) {
      test(name, async () => {
        env.oidc.tamper = tamper;
        try {
          await expectProviderFailed("acme");
        } finally {
          env.oidc.honest();
        }
      });
    }
    const forged = {
      "signed by a key outside the provider's set, under its key id": async (token) => {
        const header = decodeProtectedHeader(token);
        const { privateKey } = await generateKeyPair(header.alg);
        return sign(header, decodeJwt(token), privateKey);
      },
      "unsigned (alg none)": async (token) => {
        const head = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
        return `${head}.${token.split(".")[1]}.`;
      },
      "with its RS256 signature relabelled ES256": async (token) => {
        const [, payload, signature] = token.split(".");
        const ec = env.oidc.keys.find((key) => key.alg === "ES256");
        const head = Buffer.from(JSON.stringify({ alg: "ES256", kid: ec.kid })).toString("base64url");
        return `${head}.${payload}.${signature}`;
      },
    };
    for (const [name, tamperToken] of Object.entries(forged)) {
      test(name, async () => {
        env.oidc.tamperToken = tamperToken;
        try {
          await expectProviderFailed("acme");
        } finally {
          env.oidc.honest();
        }
      });
    }
    test("with a broken signature (RS256 and ES256)", async () => {
      env.oidc.tamperSignature = true;
      try {
        await expectProviderFailed("acme");
        await expectProviderFailed("ec");
      } finally {
        env.oidc.honest();
      }
    });

    /** Sign in through `provider` and expect error=provider_failed and no account. */
    async function expectProviderFailed(provider) {
      const account = person();
      const before = env.oidc.issued.length;
      const flow = await env.signIn(provider, account);
      assert.ok(env.oidc.issued.length > before, "the Worker did fetch a token");
      assert.equal(flow.params.get("error"), "provider_failed");
      assert.equal(flow.params.get("code"), null);
      assert.equal(await env.worker.count("SELECT COUNT(*) AS n FROM users WHERE email = ?1", account.email), 0);
    }

    test("re-signed unchanged, or for several audiences with azp naming the client, it signs in", async () => {
      // The controls: re-signing itself is no cause for refusal, so the refusals above are
      // the changes'.
      for (const tamper of [() => {}, (claims) => {
        claims.aud = [claims.aud, "someone-else"];
        claims.azp = ACME.client_id;
      }]) {
        env.oidc.tamper = tamper;
        try {
          const flow = await env.signIn("acme", person());
          assert.ok(flow.params.get("code"), `signed in: ${flow.params}`);
        } finally {
          env.oidc.honest();
        }
      }
    });
  });

  test("the provider's access_denied comes back to the app as error=access_denied", async () => {
    env.oidc.deny = true;
    try {
      const flow = await env.signIn("acme", person());
      assert.equal(flow.params.get("error"), "access_denied");
      assert.equal(flow.params.get("code"), null);
    } finally {
      env.oidc.deny = false;
    }
  });

  test("a provider that cannot be reached, or whose discovery names another issuer: 503 at start", async () => {
    for (const provider of ["down", "renamed"]) {
      const response = await env.get(`/api/v1/auth/oauth/${provider}/start?redirect_to=${encodeURIComponent(APP)}`);
      assertProblem(assert, response, 503);
      assert.equal(response.headers.get("set-cookie"), null, provider);
    }
  });

  test("a callback's provider error it does not know is server_error; no code is provider_failed", async () => {
    for (const [query, expected] of [
      [{ error: "<script>", error_description: "anything at all" }, "server_error"],
      [{ error: "temporarily_unavailable" }, "temporarily_unavailable"],
      [{}, "provider_failed"],
    ]) {
      const started = await env.start("acme");
      const response = await env.get(
        `/api/v1/auth/oauth/acme/callback?${new URLSearchParams({ state: started.state, ...query })}`,
        { cookie: `${COOKIE}=${started.cookie}` },
      );
      const params = backAt(response);
      assert.deepEqual([...params], [["error", expected]], "only the error, never the provider's text");
      const cleared = parseCookie(response.headers.get("set-cookie"));
      assert.equal(cleared.value, "");
      assert.match(cleared.attributes, /Max-Age=0/);
    }
    // A query naming state twice is refused rather than resolved.
    const started = await env.start("acme");
    const twice = await env.get(
      `/api/v1/auth/oauth/acme/callback?state=${started.state}&state=${started.state}&code=x`,
      { cookie: `${COOKIE}=${started.cookie}` },
    );
    assertProblem(assert, twice, 400);
  });

  test("start refuses a redirect_to that is not allowed, lookalikes included, and an unknown provider", async () => {
    const refused = [
      "https://app.test.evil/callback",
      "https://app.test@evil/callback",
      "https://evil@app.test/callback",
      "https://app.test/callback/../x",
      "https://app.test/callback/%2e%2e/x",
      "https://app.test/callback#fragment",
      "https://app.test/callbackx",
      "https://app.test/callback/",
      "https://app.test\\@evil.test/callback",
      "https://app.test%2f@evil.test/callback",
      "https://app.test/%63allback",
      // The names the callback adds: a planted code would reach the app before the real one.
      "https://app.test/callback?code=planted",
      "https://app.test/callback?next=x&error=access_denied",
      "https://app.test/callback?state=x",
      "https://app.test/other",
      "https://app.test:8443/callback",
      "http://app.test/callback",
      "https://evil.test/callback",
      "//app.test/callback",
      "/callback",
      "javascript:alert(1)",
      "",
    ];
    for (const redirectTo of refused) {
      const response = await env.get(`/api/v1/auth/oauth/acme/start?${new URLSearchParams({ redirect_to: redirectTo })}`);
      assertProblem(assert, response, 400);
      assert.equal(response.headers.get("set-cookie"), null, redirectTo);
      assert.equal(response.headers.get("location"), null, redirectTo);
    }
    assertProblem(assert, await env.get("/api/v1/auth/oauth/acme/start"), 400);
    // The allowed one, with a query of its own that is kept.
    const kept = await env.signIn("acme", person(), { query: { redirect_to: `${APP}?from=test` } });
    assert.equal(kept.params.get("from"), "test");
    assert.ok(kept.params.get("code"));
    assertProblem(assert, await env.get(`/api/v1/auth/oauth/nosuch/start?redirect_to=${encodeURIComponent(APP)}`), 404);
  });

  describe("accounts with the same email", () => {
    let admin;
    before(async () => {
      admin = await env.worker.admin();
    });

    test("both verified: the provider account is linked to the local account", async () => {
      const email = address("linked");
      const local = await localAccount(env, admin, { email, verified: true });
      const tokens = await env.tokensFor("acme", person({ email }));
      assert.equal((await env.me(tokens.access_token)).id, local.user.id);
      const identities = await env.identities(local.access_token);
      assert.deepEqual(identities.map((identity) => identity.provider), ["acme"]);
      // The password still works: linking took nothing away.
      assert.equal((await env.worker.attemptLogin(local.username)).status, 200);
    });

    test("the local email unverified: link_required, and no account is made", async () => {
      const email = address("unverified");
      const local = await localAccount(env, admin, { email, verified: false });
      const users = await env.worker.count("SELECT COUNT(*) AS n FROM users");
      const flow = await env.signIn("acme", person({ email }));
      assert.equal(flow.params.get("error"), "link_required");
      assert.equal(flow.params.get("code"), null);
      assert.equal(await env.worker.count("SELECT COUNT(*) AS n FROM users"), users);
      assert.deepEqual(await env.identities(local.access_token), []);
    });

    for (const [what, claims] of [
      ["says the email is unverified", { email_verified: false }],
      ["says nothing about verification", { email_verified: undefined }],
    ]) {
      test(`the provider ${what}: a new account, without that email`, async () => {
        const email = address("unvouched");
        const local = await localAccount(env, admin, { email, verified: true });
        const account = person({ email, ...claims });
        if (claims.email_verified === undefined) delete account.email_verified;
        const tokens = await env.tokensFor("acme", account);
        const me = await env.me(tokens.access_token);
        assert.notEqual(me.id, local.user.id);
        assert.equal(me.email ?? null, null);
        assert.deepEqual(await env.identities(local.access_token), []);
      });
    }

    test("an address nobody has, not vouched for: the new account keeps it, unverified", async () => {
      const account = person({ email_verified: false });
      const me = await env.me((await env.tokensFor("acme", account)).access_token);
      assert.equal(me.email, account.email);
      assert.equal(me.email_verified, false);
    });

    test("a banned account's provider sign-in goes back as account_disabled", async () => {
      const email = address("banned");
      const local = await localAccount(env, admin, { email, verified: true });
      const account = person({ email });
      await env.tokensFor("acme", account);
      const banned = await env.worker.request("POST", `${ADMIN}/users/${local.user.id}/ban`, {
        token: admin.access_token,
        body: {},
      });
      assert.ok([200, 204].includes(banned.status), banned.text);
      const flow = await env.signIn("acme", account);
      assert.equal(flow.params.get("error"), "account_disabled");
      assert.equal(flow.params.get("code"), null);
    });
  });
});

describe("sign-in through GitHub", () => {
  let env;
  before(async () => {
    env = await startAll();
  });
  after(() => env.close());

  test("a verified primary email is taken; the exchange carried the client and the PKCE verifier", async () => {
    const email = address("octo");
    env.github.user = { id: 4242001, login: uniqueName("octo"), name: "Octo Cat" };
    env.github.emails = [
      { email: address("secondary"), primary: false, verified: true },
      { email, primary: true, verified: true },
    ];
    const tokens = await env.tokensFor("github", undefined);
    assert.deepEqual(env.github.refusals, []);
    const me = await env.me(tokens.access_token);
    assert.equal(me.email, email);
    assert.equal(me.email_verified, true);
    assert.equal(me.username, env.github.user.login, "named after the GitHub login");
    const [identity] = await env.identities(tokens.access_token);
    assert.equal(identity.provider, "github");
    const again = await env.tokensFor("github", undefined);
    assert.equal((await env.me(again.access_token)).id, me.id, "GitHub's numeric id names the account");
  });

  test("an unverified primary email: an account without any email", async () => {
    env.github.user = { id: 4242002, login: uniqueName("octo"), name: "Unverified" };
    env.github.emails = [
      { email: address("unverified"), primary: true, verified: false },
      { email: address("verified"), primary: false, verified: true },
    ];
    const tokens = await env.tokensFor("github", undefined);
    const me = await env.me(tokens.access_token);
    assert.equal(me.email ?? null, null);
  });

  test("the user's refusal at GitHub comes back as error=access_denied", async () => {
    env.github.deny = true;
    try {
      const flow = await env.signIn("github", undefined);
      assert.equal(flow.params.get("error"), "access_denied");
      assert.equal(flow.params.get("code"), null);
    } finally {
      env.github.deny = false;
    }
  });
});

describe("identities of a signed-in account", () => {
  let env;
  let admin;
  before(async () => {
    // Development: its outbox holds the password-reset message a test reads.
    env = await startAll({ ENVIRONMENT: "development" });
    admin = await env.worker.admin();
  });
  after(() => env.close());

  test("a link completes only with the asking account's token; then list, sign in through it, unlink", async () => {
    const local = await env.worker.signup();
    const account = person();

    // The callback hands the app a code, not a session; as a sign-in's code it is refused
    // (and spent).
    const asSignIn = await env.link(local.access_token, "acme", account);
    assert.deepEqual([...asSignIn.params.keys()], ["code"]);
    assert.match(assertProblem(assert, await env.exchange(asSignIn.params.get("code")), 400).type, /invalid_grant$/);
    // The ticket is single use.
    const replayed = assertProblem(assert, await env.get(asSignIn.ticketUrl.pathname + asSignIn.ticketUrl.search), 400);
    assert.match(replayed.type, /invalid_state$/);
    // Completed by another account (someone else's browser, someone else's app session): refused.
    const stranger = await env.worker.signup();
    const elsewhere = await env.link(local.access_token, "acme", account);
    const refused = assertProblem(assert, await env.completeLink(stranger.access_token, elsewhere.params.get("code")), 400);
    assert.match(refused.type, /invalid_grant$/);
    assert.deepEqual(await env.identities(stranger.access_token), []);
    assert.deepEqual(await env.identities(local.access_token), [], "nothing linked so far");

    // With an app challenge: the verifier completes it.
    const keys = pkce();
    const flow = await env.link(local.access_token, "acme", account, { code_challenge: keys.challenge, code_challenge_method: "S256" });
    const completed = await env.completeLink(local.access_token, flow.params.get("code"), keys.verifier);
    assert.equal(completed.status, 201, completed.text);
    const identity = completed.json;
    assert.equal(identity.provider, "acme");
    assert.equal(identity.email, account.email);
    assert.deepEqual(Object.keys(identity).sort(), ["created_at", "email", "id", "last_used_at", "provider"]);
    assert.deepEqual(await env.identities(local.access_token), [identity]);

    // The provider account now signs in to the local account.
    const signedIn = await env.tokensFor("acme", account);
    assert.equal((await env.me(signedIn.access_token)).id, local.user.id);

    const adminView = await env.worker.request("GET", `${ADMIN}/users/${local.user.id}/identities`, {
      token: admin.access_token,
    });
    assert.equal(adminView.status, 200, adminView.text);
    assert.deepEqual(adminView.json.identities.map((entry) => entry.id), [identity.id]);
    assertProblem(
      assert,
      await env.worker.request("GET", `${ADMIN}/users/${local.user.id}/identities`, { token: local.access_token }),
      403,
    );

    const path = `/api/v1/users/me/identities/${identity.id}`;
    assertProblem(assert, await env.worker.request("DELETE", path, { token: stranger.access_token }), 404);
    const unlinked = await env.worker.request("DELETE", path, { token: local.access_token });
    assert.equal(unlinked.status, 204, unlinked.text);
    assert.deepEqual(await env.identities(local.access_token), []);
    assertProblem(assert, await env.worker.request("DELETE", path, { token: local.access_token }), 404);
    // Unlinked: the provider account no longer reaches the local account.
    const afterwards = await env.tokensFor("acme", { ...account, email_verified: false });
    assert.notEqual((await env.me(afterwards.access_token)).id, local.user.id);
  });

  test("a link ticket works only at its own provider", async () => {
    const local = await env.worker.signup();
    const asked = await env.worker.request("POST", "/api/v1/users/me/identities/acme/start", {
      token: local.access_token,
      body: { redirect_to: APP },
    });
    assert.equal(asked.status, 200, asked.text);
    const ticket = new URL(asked.json.url).searchParams.get("link_ticket");
    const refused = assertProblem(assert, await env.get(`/api/v1/auth/oauth/ec/start?link_ticket=${ticket}`), 400);
    assert.match(refused.type, /invalid_state$/);
  });

  test("a provider account linked to another account: 409 identity_taken", async () => {
    const account = person();
    const owner = await env.tokensFor("acme", account);
    const other = await env.worker.signup();
    const flow = await env.link(other.access_token, "acme", account);
    const taken = assertProblem(assert, await env.completeLink(other.access_token, flow.params.get("code")), 409);
    assert.match(taken.type, /identity_taken$/);
    assert.deepEqual(await env.identities(other.access_token), []);
    assert.equal((await env.identities(owner.access_token)).length, 1);
    assert.equal((await env.me((await env.tokensFor("acme", account)).access_token)).id, (await env.me(owner.access_token)).id);
  });

  test("linking needs a signed-in caller, a known provider and an allowed redirect_to", async () => {
    const anonymous = await env.worker.request("POST", "/api/v1/users/me/identities/acme/start", {
      body: { redirect_to: APP },
    });
    assertProblem(assert, anonymous, 401);
    const local = await env.worker.signup();
    const ask = (provider, body) =>
      env.worker.request("POST", `/api/v1/users/me/identities/${provider}/start`, { token: local.access_token, body });
    assertProblem(assert, await ask("acme", { redirect_to: "https://app.test.evil/callback" }), 400);
    assertProblem(assert, await ask("nosuch", { redirect_to: APP }), 404);
  });

  test("the last way to sign in cannot be unlinked; another identity or a password frees it", async () => {
    const account = person();
    const tokens = await env.tokensFor("acme", account);
    const [first] = await env.identities(tokens.access_token);
    const unlink = (id, token = tokens.access_token) =>
      env.worker.request("DELETE", `/api/v1/users/me/identities/${id}`, { token });
    const refused = assertProblem(assert, await unlink(first.id), 409);
    assert.match(refused.type, /last_sign_in_method$/);

    // A second identity frees the first; the second is then the last.
    const second = await env.linked(tokens.access_token, "ec", person());
    assert.equal((await unlink(first.id)).status, 204);
    assert.match(assertProblem(assert, await unlink(second.id), 409).type, /last_sign_in_method$/);

    // A password, set through a reset by email, frees the last one.
    const asked = await env.worker.request("POST", "/api/v1/auth/password/reset", { body: { email: account.email } });
    assert.equal(asked.status, 202, asked.text);
    const reset = await env.worker.latestMessage(account.email, "reset_password");
    const newPassword = "a password chosen after the fact";
    const confirmed = await env.worker.request("POST", "/api/v1/auth/password/reset/confirm", {
      body: { token: reset.token, new_password: newPassword },
    });
    assert.equal(confirmed.status, 200, confirmed.text);
    const login = await env.worker.attemptLogin(account.email, newPassword);
    assert.equal(login.status, 200, login.text);
    assert.equal((await unlink(second.id, login.json.access_token)).status, 204);
    assert.deepEqual(await env.identities(login.json.access_token), []);
  });
});

describe("metrics and audit of provider sign-ins", () => {
  let env;
  let admin;
  before(async () => {
    // No background flush: the scrape alone moves the counts, so they are exact.
    env = await startAll({ METRICS_FLUSH_SECONDS: "3600" });
    admin = await env.worker.admin();
  });
  after(() => env.close());

  test("each callback is counted by provider and result", async () => {
    const before = await scrape(env.worker);
    await env.tokensFor("acme", person());
    await env.tokensFor("ec", person());
    await env.tokensFor("ec", person());
    env.oidc.tamper = (claims) => (claims.aud = "someone-else");
    try {
      assert.equal((await env.signIn("acme", person())).params.get("error"), "provider_failed");
    } finally {
      env.oidc.honest();
    }
    env.oidc.deny = true;
    try {
      assert.equal((await env.signIn("acme", person())).params.get("error"), "access_denied");
    } finally {
      env.oidc.deny = false;
    }
    const email = address("metrics");
    await env.worker.signup({ email });
    assert.equal((await env.signIn("acme", person({ email }))).params.get("error"), "link_required");
    const stale = await env.start("acme");
    await env.callback(await env.drive("acme", stale.location, person()), undefined);
    const local = await env.worker.signup();
    await env.link(local.access_token, "acme", person());

    const after = await scrape(env.worker);
    assert.equal(after.edge_auth_oauth_sign_ins_total?.type, "counter");
    const delta = (provider, result) => {
      const labels = { provider, result };
      return counter(after, "edge_auth_oauth_sign_ins_total", labels) - counter(before, "edge_auth_oauth_sign_ins_total", labels);
    };
    assert.deepEqual(
      {
        acmeSuccess: delta("acme", "success"),
        ecSuccess: delta("ec", "success"),
        providerFailed: delta("acme", "provider_failed"),
        accessDenied: delta("acme", "access_denied"),
        linkRequired: delta("acme", "link_required"),
        invalidState: delta("acme", "invalid_state"),
        linkCode: delta("acme", "link_code"),
      },
      { acmeSuccess: 1, ecSuccess: 2, providerFailed: 1, accessDenied: 1, linkRequired: 1, invalidState: 1, linkCode: 1 },
    );
  });

  test("provider sign-ups, sign-ins, links and unlinks are audited", async () => {
    const account = person();
    const first = await env.tokensFor("acme", account);
    const user = await env.me(first.access_token);
    await env.tokensFor("acme", account);
    const linked = await env.linked(first.access_token, "ec", person());
    const unlinked = await env.worker.request("DELETE", `/api/v1/users/me/identities/${linked.id}`, {
      token: first.access_token,
    });
    assert.equal(unlinked.status, 204);

    const response = await env.worker.request("GET", `${ADMIN}/audit?user=${user.id}&per_page=100`, {
      token: admin.access_token,
    });
    assert.equal(response.status, 200, response.text);
    const entries = [...response.json.entries].reverse().map((entry) => ({
      action: entry.action,
      actor: entry.actor_id,
      provider: entry.details?.provider,
      identity: entry.details?.identity_id,
    }));
    const self = user.id;
    assert.deepEqual(entries, [
      { action: "user.signup", actor: self, provider: "acme", identity: undefined },
      { action: "user.login", actor: self, provider: "acme", identity: undefined },
      { action: "user.provider_login", actor: self, provider: "acme", identity: undefined },
      { action: "user.login", actor: self, provider: "acme", identity: undefined },
      { action: "identity.linked", actor: self, provider: "ec", identity: linked.id },
      { action: "identity.unlinked", actor: self, provider: undefined, identity: linked.id },
    ]);
  });
});

describe("rate limits on provider sign-in", () => {
  let env;
  before(async () => {
    env = await startAll({ RATE_LIMIT_OAUTH: "2/60" });
  });
  after(() => env.close());

  test("start, callback, exchange and link each have their own RATE_LIMIT_OAUTH budget", async () => {
    // Two sign-ins spend each step's budget; the third is refused at every step.
    for (let i = 0; i < 2; i += 1) await env.tokensFor("acme", person());
    const limited = async (response, scope) => {
      assertProblem(assert, response, 429);
      assert.ok(response.headers.get("retry-after"), `${scope} says when to come back`);
    };
    await limited(await env.get(`/api/v1/auth/oauth/acme/start?redirect_to=${encodeURIComponent(APP)}`), "start");
    await limited(await env.get("/api/v1/auth/oauth/acme/callback?state=x&code=y"), "callback");
    await limited(await env.exchange("some-code"), "exchange");
    // Linking has a budget of its own, and its completion shares the exchange's.
    const local = await env.worker.signup();
    const ask = () =>
      env.worker.request("POST", "/api/v1/users/me/identities/acme/start", { token: local.access_token, body: { redirect_to: APP } });
    assert.equal((await ask()).status, 200);
    assert.equal((await ask()).status, 200);
    await limited(await ask(), "link");
    await limited(await env.completeLink(local.access_token, "some-code"), "link completion");
  });
});

describe("provider sign-in when REQUIRE_EMAIL_VERIFICATION is set", () => {
  let env;
  before(async () => {
    env = await startAll({ REQUIRE_EMAIL_VERIFICATION: "true" });
  });
  after(() => env.close());

  test("an account the provider vouches for gets a session; one without a verified address does not", async () => {
    const verified = await env.tokensFor("acme", person());
    assert.equal((await env.me(verified.access_token)).email_verified, true);

    const account = person({ email_verified: false });
    const flow = await env.signIn("acme", account);
    const refused = assertProblem(assert, await env.exchange(flow.params.get("code")), 403);
    assert.match(refused.detail, /not verified/);
  });
});

describe("log hygiene of provider sign-in", () => {
  let env;
  before(async () => {
    env = await startAll();
  });
  after(() => env.close());

  test("no state, cookie, code, token or client secret reaches the log", async () => {
    const start = env.worker.logs.length;
    const secrets = [ACME.client_secret, EC.client_secret, GITHUB.client_secret];
    const keep = (flow) => {
      secrets.push(flow.state, flow.cookie, flow.providerCode);
      if (flow.params.get("code")) secrets.push(flow.params.get("code"));
    };

    // A sign-in, then one with the app's PKCE, through each provider kind.
    const account = person();
    const tokens = await env.tokensFor("acme", account);
    keep(tokens.flow);
    secrets.push(tokens.access_token, tokens.refresh_token, account.email);
    const keys = pkce();
    const withPkce = await env.signIn("ec", person(), {
      query: { redirect_to: APP, code_challenge: keys.challenge, code_challenge_method: "S256" },
    });
    keep(withPkce);
    secrets.push(keys.verifier);
    assert.equal((await env.exchange(withPkce.params.get("code"), "a-wrong-verifier-of-enough-length-0123456789abc")).status, 400);
    env.github.user = { id: 777001, login: uniqueName("gh"), name: "Hygiene" };
    env.github.emails = [{ email: address("gh"), primary: true, verified: true }];
    const github = await env.tokensFor("github", undefined);
    keep(github.flow);
    secrets.push(github.access_token, github.refresh_token);

    // Refusals log their reasons: a broken id_token, a state without its cookie, a replay.
    env.oidc.tamperSignature = true;
    try {
      keep(await env.signIn("acme", person()));
    } finally {
      env.oidc.honest();
    }
    const cookieless = await env.start("acme");
    const cookielessCallback = await env.drive("acme", cookieless.location, person());
    secrets.push(cookieless.state, cookieless.cookie, new URL(cookielessCallback).searchParams.get("code"));
    assert.equal((await env.callback(cookielessCallback, undefined)).status, 400);
    assert.equal((await env.callback(tokens.flow.callbackUrl, tokens.flow.cookie)).status, 400);

    // A link, its ticket and its code.
    const linkFlow = await env.link(tokens.access_token, "ec", person());
    keep(linkFlow);
    secrets.push(linkFlow.ticketUrl.searchParams.get("link_ticket"));
    assert.equal((await env.completeLink(tokens.access_token, linkFlow.params.get("code"))).status, 201);

    secrets.push(...env.oidc.issued, ...env.github.issued);
    const lines = await settledLogs(env.worker, start);
    // The refusals above were logged, so the search below looks at real content.
    const events = new Set(lines.map((line) => JSON.parse(line).event));

    for (const event of ["oauth_provider_failed", "oauth_state_refused", "oauth_code_verifier_refused"]) {
      assert.ok(events.has(event), `a ${event} line among ${[...events].join(", ")}`);
    }
    const text = lines.join("\n");
    const missing = secrets.filter((value) => !value);
    assert.deepEqual(missing, [], "every secret was collected");
    for (const value of secrets) {
      assert.ok(!text.includes(value), `the log holds a secret: ${value.slice(0, 12)}…`);
    }
    assert.doesNotMatch(text, /eyJ[\w-]+\.[\w-]+\.[\w-]+/, "nothing that looks like a JWT");
  });
});

/** The Worker's log lines since `start`, once the output has stopped growing. */
async function settledLogs(worker, start) {
  let seen = -1;
  while (worker.logs.length !== seen) {
    seen = worker.logs.length;
    await sleep(200);
  }
  return worker.logs.slice(start);
}

describe("a provider configured wrongly", () => {
  // Each setting set wrongly stops the whole service, naming the setting and never the
  // secret: starting without the provider, or with half of it, would hide the mistake.
  const good = {
    OAUTH_PROVIDERS: "acme",
    OAUTH_ACME_CLIENT_ID: "acme-client",
    OAUTH_ACME_CLIENT_SECRET: "acme-secret-value-never-logged",
    OAUTH_ACME_ISSUER: "https://id.acme.example",
    ALLOWED_REDIRECT_URLS: APP,
    PUBLIC_BASE_URL,
  };
  const cases = [
    ["no client secret", { OAUTH_ACME_CLIENT_SECRET: undefined }, "OAUTH_ACME_CLIENT_SECRET"],
    ["no issuer", { OAUTH_ACME_ISSUER: undefined }, "OAUTH_ACME_ISSUER"],
    ["an http:// issuer in production", { ENVIRONMENT: "production", OAUTH_ACME_ISSUER: "http://id.acme.example" }, "OAUTH_ACME_ISSUER"],
    ["no redirect allow-list", { ALLOWED_REDIRECT_URLS: undefined }, "ALLOWED_REDIRECT_URLS"],
    ["a malformed redirect entry", { ALLOWED_REDIRECT_URLS: "app.test/callback" }, "ALLOWED_REDIRECT_URLS"],
    ["no public base URL", { PUBLIC_BASE_URL: undefined }, "PUBLIC_BASE_URL"],
    ["a bad provider name", { OAUTH_PROVIDERS: "acme,no-dashes" }, "OAUTH_PROVIDERS"],
    [
      "the GitHub stand-in URLs in production",
      {
        ENVIRONMENT: "production",
        OAUTH_PROVIDERS: "acme,github",
        OAUTH_GITHUB_CLIENT_ID: "github-client",
        OAUTH_GITHUB_CLIENT_SECRET: "acme-secret-value-never-logged",
        OAUTH_GITHUB_WEB_URL: "http://127.0.0.1:9",
      },
      "OAUTH_GITHUB_WEB_URL",
    ],
  ];
  for (const [what, change, setting] of cases) {
    test(`${what}: every request is a configuration error naming ${setting}`, async () => {
      const worker = await startWorker({ vars: { ...good, ...change } });
      try {
        for (const path of ["/api/health", `/api/v1/auth/oauth/acme/start?redirect_to=${encodeURIComponent(APP)}`]) {
          const response = await worker.request("GET", path);
          const body = assertProblem(assert, response, 500);
          assert.equal(body.detail, "The service is not configured correctly");
        }
        await sleep(100);
        assert.ok(worker.logs.some((line) => line.includes(setting)), `the log names ${setting}`);
        assert.ok(!worker.logs.some((line) => line.includes("acme-secret-value-never-logged")), "no secret in the log");
      } finally {
        await worker.dispose();
      }
    });
  }

  test("the same settings, set right, serve", async () => {
    const worker = await startWorker({ vars: good });
    try {
      assert.equal((await worker.request("GET", "/api/health")).status, 200);
    } finally {
      await worker.dispose();
    }
  });
});
