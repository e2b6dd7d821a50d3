// Sign-in providers for the provider suites, run on 127.0.0.1: a real OpenID Connect
// provider (the `oidc-provider` package, so the Worker meets an honest implementation of
// the protocol, not our reading of it) and a stand-in for the few GitHub endpoints the
// Worker calls (GitHub is not OpenID Connect and cannot be run locally). Both are driven
// by plain HTTP, as a browser would, with no user interface: the test says who signs in.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { exportJWK, generateKeyPair, importJWK, SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import Provider from "oidc-provider";

/** The base URL the Worker is registered under at the providers (its PUBLIC_BASE_URL). */
export const PUBLIC_BASE_URL = "https://auth.test";

/** The callback URL registered at a provider for the Worker's provider `name`. */
export const callbackUrl = (name, base = PUBLIC_BASE_URL) => `${base}/api/v1/auth/oauth/${name}/callback`;

/** Listen on a random port of 127.0.0.1; resolves to the port. */
async function listen(server) {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server.address().port;
}

/** Close a server, dropping idle keep-alive connections so the process can exit. */
function closer(server) {
  return () =>
    new Promise((resolve) => {
      server.close(resolve);
      server.closeAllConnections?.();
    });
}

/** Read a request's body as text. */
async function bodyOf(req) {
  let body = "";
  for await (const chunk of req) body += chunk;
  return body;
}

/**
 * The cookies a provider sets during one sign-in, sent back on each of its requests. One
 * jar per sign-in: the provider's session cookie would otherwise carry one test's login
 * into the next. Paths and expiry are ignored: the jar lives for seconds and talks to one
 * host; a cookie set empty or already expired is removed.
 */
class CookieJar {
  #cookies = new Map();

  store(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(";");
      const at = pair.indexOf("=");
      const name = pair.slice(0, at).trim();
      const value = pair.slice(at + 1).trim();
      const expired = attributes.some((attribute) => {
        const [key, val] = attribute.trim().split("=");
        if (key.toLowerCase() === "max-age") return Number(val) <= 0;
        if (key.toLowerCase() === "expires") return Date.parse(val) <= Date.now();
        return false;
      });
      if (!value || expired) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }

  header() {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }
}

/** A private and public JWK pair for `alg`, with a key id. */
async function signingKey(alg) {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: "sig", kid: `${alg.toLowerCase()}-${randomBytes(4).toString("hex")}` };
}

/**
 * Start an OpenID Connect provider (issuer `http://127.0.0.1:PORT`). `clients` are the
 * Worker's registrations: `{ name, client_id, client_secret, alg }`, `name` being the
 * Worker's provider name (its callback URL is registered) and `alg` the id_token's signing
 * algorithm, RS256 (default) or ES256: the key set holds one key of each.
 *
 * Who signs in: set `provider.nextLogin = { sub, email, email_verified, name, ... }` (or
 * pass the account to `drive`) before sending the browser to the provider. The login and
 * consent pages complete at once, granting openid email profile; while `provider.deny` is
 * set they refuse instead, and the browser comes back with `error=access_denied`.
 *
 * Tampering, for the refusals an honest provider never gives cause for: with
 * `provider.tamper = (claims, header) => ...` the id_token the token endpoint answers with
 * is re-signed with the provider's own key after the function changed `claims` (and
 * `header`) in place; with `provider.tamperSignature = true` a byte of its signature is
 * flipped. Both stay set until the test clears them (`provider.honest()`). `tokenRequests`
 * counts the token endpoint's answers.
 */
export async function startOidcProvider({ clients, publicBaseUrl = PUBLIC_BASE_URL }) {
  const keys = [await signingKey("RS256"), await signingKey("ES256")];
  const accounts = new Map();
  const server = createServer();
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const oidc = new Provider(issuer, {
    clients: clients.map(({ name, client_id, client_secret, alg = "RS256" }) => ({
      client_id,
      client_secret,
      redirect_uris: [callbackUrl(name, publicBaseUrl)],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: alg,
    })),
    jwks: { keys },
    // Every client must use PKCE, as the Worker always does: a Worker that forgot its
    // verifier would be refused here, not silently accepted.
    pkce: { required: () => true },
    scopes: ["openid", "email", "profile"],
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name", "preferred_username"],
    },
    // The Worker reads the account from the id_token, not from userinfo: put the granted
    // scopes' claims in it (what Google and most providers do).
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(32).toString("hex")] },
    // Explicit lifetimes, which also keeps the provider from noting each default it uses.
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    async findAccount(_ctx, sub) {
      const claims = accounts.get(sub);
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ ...claims, sub }) };
    },
  });
  // The provider warns about plain http and the in-memory adapter on every start: both are
  // what a test wants.
  oidc.on("server_error", (_ctx, error) => console.error("oidc-provider:", error));

  const provider = {
    issuer,
    keys,
    nextLogin: undefined,
    deny: false,
    tamper: undefined,
    tamperSignature: false,
    tokenRequests: 0,
    /** Clear both tamper modes. */
    honest() {
      provider.tamper = undefined;
      provider.tamperSignature = false;
    },
    /**
     * Follow the provider's side of a sign-in from `startLocation` (the Worker's redirect
     * to the authorization endpoint) until it sends the browser away; returns that URL:
     * the Worker's callback with `code` and `state`, or with `error`. `account` (default
     * `nextLogin`) signs in.
     */
    async drive(startLocation, account = provider.nextLogin) {
      assert.ok(startLocation?.startsWith(`${issuer}/`), `a redirect to the provider: ${startLocation}`);
      if (account) provider.nextLogin = account;
      const jar = new CookieJar();
      let location = startLocation;
      for (let hop = 0; hop < 10; hop += 1) {
        const response = await fetch(location, { redirect: "manual", headers: { cookie: jar.header() } });
        jar.store(response);
        const next = response.headers.get("location");
        if (!next) {
          assert.fail(`the provider answered ${response.status} without a redirect: ${await response.text()}`);
        }
        location = new URL(next, location).href;
        if (!location.startsWith(`${issuer}/`)) return location;
      }
      assert.fail("the provider kept redirecting");
    },
    close: closer(server),
  };

  // After the token endpoint answered: re-sign or break its id_token when a test asks to.
  // This runs inside the provider's own middleware chain, so discovery, the issuer and
  // every endpoint stay exactly the provider's.
  oidc.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== "token" || ctx.status !== 200) return;
    provider.tokenRequests += 1;
    const idToken = ctx.body?.id_token;
    if (!idToken) return;
    if (provider.tamper) {
      const header = decodeProtectedHeader(idToken);
      const claims = decodeJwt(idToken);
      provider.tamper(claims, header);
      const key = keys.find((candidate) => candidate.kid === header.kid) ?? keys.find((k) => k.alg === header.alg);
      ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader(header).sign(await importJWK(key, key.alg)) };
    }
    if (provider.tamperSignature) {
      const [head, payload, signature] = ctx.body.id_token.split(".");
      const bytes = Buffer.from(signature, "base64url");
      bytes[bytes.length >> 1] ^= 0x01;
      ctx.body = { ...ctx.body, id_token: [head, payload, bytes.toString("base64url")].join(".") };
    }
  });

  const handler = oidc.callback();
  server.on("request", async (req, res) => {
    if (!req.url.startsWith("/interaction/")) return handler(req, res);
    // The login and consent "pages": whoever the test named signs in and grants the
    // scopes, in one step, so a client following redirects completes the flow.
    try {
      const details = await oidc.interactionDetails(req, res);
      if (provider.deny) {
        const result = { error: "access_denied", error_description: "The user said no" };
        return await oidc.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
      }
      const account = provider.nextLogin;
      assert.ok(account?.sub, "provider.nextLogin names who signs in");
      const { sub, ...claims } = account;
      accounts.set(sub, claims);
      const grant = new oidc.Grant({ accountId: sub, clientId: details.params.client_id });
      grant.addOIDCScope("openid email profile");
      const grantId = await grant.save();
      await oidc.interactionFinished(
        req,
        res,
        { login: { accountId: sub }, consent: { grantId } },
        { mergeWithLastSubmission: false },
      );
    } catch (error) {
      res.writeHead(500, { "content-type": "text/plain" }).end(String(error?.stack ?? error));
    }
  });
  return provider;
}

/**
 * A stand-in for GitHub's OAuth app endpoints, as the Worker calls them:
 * - `GET {web}/login/oauth/authorize`: sends the browser back to `redirect_uri` with a code
 *   and the state (or `error=access_denied` while `deny` is set);
 * - `POST {web}/login/oauth/access_token`: checks client, secret, code, redirect_uri and the
 *   PKCE verifier against the authorization's S256 challenge; answers JSON;
 * - `GET {api}/user` and `GET {api}/user/emails` with the bearer token.
 * `user` (`{id, login, name}`) and `emails` (`[{email, primary, verified}]`) are who signs
 * in next; `refusals` lists why each refused request was refused.
 */
export async function startGithubStandIn({ client_id, client_secret, publicBaseUrl = PUBLIC_BASE_URL, name = "github" }) {
  const codes = new Map();
  const tokens = new Map();
  const server = createServer();
  const port = await listen(server);
  const base = `http://127.0.0.1:${port}`;
  const github = {
    web: `${base}/web`,
    api: `${base}/api`,
    user: { id: 1, login: "octocat", name: "The Octocat" },
    emails: [],
    deny: false,
    refusals: [],
    close: closer(server),
    /** Follow the authorization redirect; returns where GitHub sends the browser back to. */
    async drive(startLocation) {
      assert.ok(startLocation?.startsWith(`${github.web}/`), `a redirect to GitHub: ${startLocation}`);
      const response = await fetch(startLocation, { redirect: "manual" });
      assert.equal(response.status, 302, await response.text());
      return response.headers.get("location");
    },
  };
  const json = (res, status, body) =>
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
  const refuse = (res, status, why) => {
    github.refusals.push(why);
    json(res, status, { error: why });
  };

  server.on("request", async (req, res) => {
    const url = new URL(req.url, base);
    if (req.method === "GET" && url.pathname === "/web/login/oauth/authorize") {
      const q = url.searchParams;
      const redirect = q.get("redirect_uri");
      if (q.get("client_id") !== client_id || redirect !== callbackUrl(name, publicBaseUrl)) {
        return refuse(res, 400, "authorize: unknown client or redirect_uri");
      }
      if (q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
        return refuse(res, 400, "authorize: no S256 challenge");
      }
      const back = new URL(redirect);
      if (github.deny) {
        back.searchParams.set("error", "access_denied");
        back.searchParams.set("error_description", "The user has denied your application access.");
      } else {
        const code = randomBytes(10).toString("hex");
        codes.set(code, { challenge: q.get("code_challenge"), redirect, user: github.user, emails: github.emails });
        back.searchParams.set("code", code);
      }
      back.searchParams.set("state", q.get("state") ?? "");
      return res.writeHead(302, { location: back.href }).end();
    }
    if (req.method === "POST" && url.pathname === "/web/login/oauth/access_token") {
      const form = new URLSearchParams(await bodyOf(req));
      const grant = codes.get(form.get("code"));
      // A code is spent by its first exchange, right or wrong, as GitHub does.
      codes.delete(form.get("code"));
      if (form.get("client_id") !== client_id || form.get("client_secret") !== client_secret) {
        return refuse(res, 401, "token: bad client credentials");
      }
      if (!grant || form.get("redirect_uri") !== grant.redirect) {
        return refuse(res, 400, "token: bad code or redirect_uri");
      }
      const verifier = form.get("code_verifier") ?? "";
      if (createHash("sha256").update(verifier).digest("base64url") !== grant.challenge) {
        return refuse(res, 400, "token: PKCE verifier does not match");
      }
      if (!/application\/json/.test(req.headers.accept ?? "")) {
        return refuse(res, 406, "token: the Worker must ask for JSON");
      }
      const token = `gho_${randomBytes(18).toString("hex")}`;
      tokens.set(token, grant);
      return json(res, 200, { access_token: token, token_type: "bearer", scope: "read:user,user:email" });
    }
    if (req.method === "GET" && (url.pathname === "/api/user" || url.pathname === "/api/user/emails")) {
      const grant = tokens.get((req.headers.authorization ?? "").replace(/^Bearer /, ""));
      if (!grant) return refuse(res, 401, `${url.pathname}: bad bearer token`);
      return json(res, 200, url.pathname === "/api/user" ? grant.user : grant.emails);
    }
    refuse(res, 404, `no route ${req.method} ${url.pathname}`);
  });
  return github;
}
