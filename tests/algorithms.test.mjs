// Token algorithms (`JWT_ALGORITHM` = EdDSA, ES256, RS256): the published keys, tokens that
// independent libraries verify through the live `/.well-known/jwks.json` (jose's
// createRemoteJWKSet, PyJWT's PyJWKClient), every pairing of a header `alg` with a key of
// another algorithm refused before any crypto, and key rotation without downtime, within one
// algorithm and across two.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrivateKey } from "node:crypto";
import { CompactSign, createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { AUDIENCE, ISSUER, assertUnauthorized, sleep, startWorker } from "./helpers.mjs";
import { pyjwtVerify } from "./interop.mjs";
import { generate } from "../scripts/keys.mjs";

const ALGORITHMS = ["EdDSA", "ES256", "RS256"];

/** A Worker signing with a fresh key of `alg` (or `key`), reachable on a real local port. */
async function workerFor(alg, { key = generate(alg), verifyKeys, persist } = {}) {
  const worker = await startWorker({
    signingKey: key.signingKey,
    persist,
    vars: {
      JWT_ALGORITHM: alg,
      ALLOWED_HOSTS: "localhost,127.0.0.1",
      ...(verifyKeys ? { JWT_VERIFY_KEYS: verifyKeys } : {}),
    },
  });
  const base = (await worker.mf.ready).toString().replace(/\/$/, "");
  return { worker, key, base, jwksUrl: `${base}/.well-known/jwks.json` };
}

/** The token with one character of its signature changed. */
function tamperSignature(token) {
  const [header, payload, signature] = token.split(".");
  const at = Math.floor(signature.length / 2);
  return `${header}.${payload}.${signature.slice(0, at)}${signature[at] === "A" ? "B" : "A"}${signature.slice(at + 1)}`;
}

/** The token with `roles` raised to admin after signing. */
function tamperPayload(token) {
  const [header, payload, signature] = token.split(".");
  const claims = JSON.parse(Buffer.from(payload, "base64url"));
  claims.roles = ["admin"];
  return `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
}

const expiry = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp;

/** How jose (remote JWKS) judges `token`: "ok" or the error's code. */
async function joseVerdict(jwks, token, alg, { audience = AUDIENCE, currentDate } = {}) {
  try {
    await jwtVerify(token, jwks, { issuer: ISSUER, audience, algorithms: [alg], currentDate });
    return "ok";
  } catch (error) {
    assert.ok(error instanceof errors.JOSEError, String(error));
    return error.code;
  }
}

for (const alg of ALGORITHMS) {
  describe(`JWT_ALGORITHM=${alg}`, () => {
    let ctx;
    let account;
    before(async () => {
      ctx = await workerFor(alg);
      account = await ctx.worker.signup();
    });
    after(() => ctx.worker.dispose());

    test("the JWKS publishes the key's public members, alg, use and its RFC 7638 kid", async () => {
      const response = await ctx.worker.request("GET", "/.well-known/jwks.json");
      assert.equal(response.status, 200, response.text);
      assert.deepEqual(response.json, { keys: [ctx.key.publicJwk] });
      for (const secret of ["d", "p", "q", "dp", "dq", "qi"]) assert.equal(response.json.keys[0][secret], undefined);
    });

    test("tokens carry the algorithm and the kid; the Worker signs and verifies them through WebCrypto", async () => {
      const header = decodeProtectedHeader(account.access_token);
      assert.deepEqual(header, { alg, kid: ctx.key.publicJwk.kid, typ: "JWT" });
      assert.equal((await ctx.worker.me(account.access_token)).status, 200);
      const login = await ctx.worker.login(account.username);
      assert.equal((await ctx.worker.me(login.access_token)).status, 200);
      for (const forged of [tamperSignature(account.access_token), tamperPayload(account.access_token)]) {
        assertUnauthorized(assert, await ctx.worker.me(forged), "Invalid token");
      }
      await sleep(50);
      assert.ok(!ctx.worker.logs.some((line) => line.includes("webcrypto_unavailable")), ctx.worker.logs.join("\n"));
    });

    test("jose verifies them through the live JWKS URL, checking iss, aud and exp; tampered tokens fail", async () => {
      const jwks = createRemoteJWKSet(new URL(ctx.jwksUrl));
      const token = account.access_token;
      assert.equal(await joseVerdict(jwks, token, alg), "ok");
      assert.equal(await joseVerdict(jwks, tamperSignature(token), alg), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
      assert.equal(await joseVerdict(jwks, tamperPayload(token), alg), "ERR_JWS_SIGNATURE_VERIFICATION_FAILED");
      const late = new Date((expiry(token) + 1) * 1000);
      assert.equal(await joseVerdict(jwks, token, alg, { currentDate: late }), "ERR_JWT_EXPIRED");
      assert.equal(await joseVerdict(jwks, token, alg, { audience: "another-app" }), "ERR_JWT_CLAIM_VALIDATION_FAILED");
      const otherAlg = ALGORITHMS.find((other) => other !== alg);
      assert.equal(await joseVerdict(jwks, token, otherAlg), "ERR_JOSE_ALG_NOT_ALLOWED");
    });

    test("PyJWT (PyJWKClient) verifies them through the live JWKS URL, checking iss, aud and exp; tampered tokens fail", async () => {
      const token = account.access_token;
      const verdicts = await pyjwtVerify({
        jwksUrl: ctx.jwksUrl,
        alg,
        issuer: ISSUER,
        audience: AUDIENCE,
        cases: [
          { name: "valid", token },
          { name: "signature", token: tamperSignature(token) },
          { name: "payload", token: tamperPayload(token) },
          { name: "expired", token, now: expiry(token) + 1 },
          { name: "audience", token, audience: "another-app" },
        ],
      });
      assert.deepEqual(verdicts, {
        valid: `ok:${account.user.id}`,
        signature: "InvalidSignatureError",
        payload: "InvalidSignatureError",
        expired: "ExpiredSignatureError",
        audience: "InvalidAudienceError",
      });
    });

    test("a token whose header names another algorithm than its key's is refused before any crypto", async () => {
      const [, payload] = account.access_token.split(".");
      const claims = Buffer.from(payload, "base64url");
      const kid = ctx.key.publicJwk.kid;
      const forged = {};
      for (const other of ALGORITHMS.filter((name) => name !== alg)) {
        // A genuine signature by a key of the claimed algorithm, under this key's kid.
        const attacker = generate(other);
        const privateKey =
          other === "EdDSA"
            ? createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d: attacker.signingKey, x: attacker.publicJwk.x }, format: "jwk" })
            : createPrivateKey({ key: JSON.parse(attacker.signingKey), format: "jwk" });
        forged[other] = await new CompactSign(claims).setProtectedHeader({ alg: other, kid, typ: "JWT" }).sign(privateKey);
      }
      // HS256 keyed with the published key, and no signature at all.
      forged.HS256 = await new CompactSign(claims)
        .setProtectedHeader({ alg: "HS256", kid, typ: "JWT" })
        .sign(Buffer.from(JSON.stringify(ctx.key.publicJwk)));
      const noneHeader = Buffer.from(JSON.stringify({ alg: "none", kid, typ: "JWT" })).toString("base64url");
      forged.none = `${noneHeader}.${payload}.`;
      for (const [claimed, token] of Object.entries(forged)) {
        const before = ctx.worker.logs.length;
        assertUnauthorized(assert, await ctx.worker.me(token), "Invalid token");
        await sleep(20);
        const reason = ALGORITHMS.includes(claimed) ? "AlgorithmMismatch" : "UnsupportedAlgorithm";
        assert.ok(
          ctx.worker.logs.slice(before).some((line) => line.includes(`"reason":"${reason}"`)),
          `${claimed} under a ${alg} key: ${ctx.worker.logs.slice(before).join("\n")}`,
        );
      }
    });
  });
}

// An isolate remembers the signatures it verified (by the token's digest), so a client's
// repeated requests skip the signature check. Everything else is still checked each time.
describe("a remembered signature covers only its own token, and only the signature", () => {
  let ctx;
  let account;
  before(async () => {
    const key = generate("EdDSA");
    const worker = await startWorker({ signingKey: key.signingKey, vars: { JWT_LEEWAY_SECONDS: "0" } });
    ctx = { worker, key };
    account = await worker.signup();
    assert.equal((await worker.me(account.access_token)).status, 200, "verified once: remembered");
  });
  after(() => ctx?.worker.dispose());

  test("a token altered after a verified use is refused", async () => {
    assertUnauthorized(assert, await ctx.worker.me(tamperPayload(account.access_token)), "Invalid token");
    assertUnauthorized(assert, await ctx.worker.me(tamperSignature(account.access_token)), "Invalid token");
    assert.equal((await ctx.worker.me(account.access_token)).status, 200, "the genuine one still passes");
  });

  test("a remembered token is refused once it expires", async () => {
    // Our own key's genuine signature on the account's claims, living two seconds.
    const claims = JSON.parse(Buffer.from(account.access_token.split(".")[1], "base64url"));
    const now = Math.floor(Date.now() / 1000);
    const privateKey = createPrivateKey({
      key: { kty: "OKP", crv: "Ed25519", d: ctx.key.signingKey, x: ctx.key.publicJwk.x },
      format: "jwk",
    });
    const shortLived = await new CompactSign(Buffer.from(JSON.stringify({ ...claims, iat: now, exp: now + 2 })))
      .setProtectedHeader({ alg: "EdDSA", kid: ctx.key.publicJwk.kid, typ: "JWT" })
      .sign(privateKey);
    assert.equal((await ctx.worker.me(shortLived)).status, 200);
    await sleep(3_200);
    assertUnauthorized(assert, await ctx.worker.me(shortLived), "Token has expired");
  });

  test("a remembered token is refused once its session ends", async () => {
    const other = await ctx.worker.signup();
    assert.equal((await ctx.worker.me(other.access_token)).status, 200);
    const logout = await ctx.worker.request("POST", "/api/v1/auth/logout", {
      headers: { authorization: `Bearer ${other.access_token}` },
    });
    assert.equal(logout.status, 204);
    assert.equal((await ctx.worker.me(other.access_token)).status, 401);
  });
});

describe("key rotation without downtime", () => {
  // [old algorithm, new algorithm]: a routine rotation, and migrations between algorithms.
  for (const [from, to] of [
    ["ES256", "ES256"],
    ["EdDSA", "ES256"],
    ["ES256", "RS256"],
  ]) {
    describe(`${from} to ${to}`, () => {
      let dir;
      const started = [];
      before(() => {
        dir = mkdtempSync(join(tmpdir(), "edge-auth-rotation-"));
      });
      after(async () => {
        for (const ctx of started) await ctx.worker.dispose().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      });

      test("old tokens verify until they expire, new tokens carry the new kid, the JWKS shows both meanwhile", async () => {
        // 1. The old key signs.
        const old = await workerFor(from, { persist: dir });
        started.push(old);
        const account = await old.worker.signup();
        const oldToken = account.access_token;
        assert.equal(decodeProtectedHeader(oldToken).kid, old.key.publicJwk.kid);
        await old.worker.dispose();

        // 2. Overlap: the new key signs, the old one's public part is in JWT_VERIFY_KEYS.
        const overlap = await workerFor(to, { persist: dir, verifyKeys: JSON.stringify([old.key.publicJwk]) });
        started.push(overlap);
        const jwks = await overlap.worker.request("GET", "/.well-known/jwks.json");
        assert.deepEqual(jwks.json, { keys: [overlap.key.publicJwk, old.key.publicJwk] });
        assert.equal((await overlap.worker.me(oldToken)).status, 200, "the old token still works");
        const fresh = await overlap.worker.login(account.username);
        assert.deepEqual(decodeProtectedHeader(fresh.access_token), { alg: to, kid: overlap.key.publicJwk.kid, typ: "JWT" });
        assert.equal((await overlap.worker.me(fresh.access_token)).status, 200);
        const remote = createRemoteJWKSet(new URL(overlap.jwksUrl));
        assert.equal(await joseVerdict(remote, oldToken, from), "ok");
        assert.equal(await joseVerdict(remote, fresh.access_token, to), "ok");
        const late = new Date((expiry(oldToken) + 1) * 1000);
        assert.equal(await joseVerdict(remote, oldToken, from, { currentDate: late }), "ERR_JWT_EXPIRED");
        await overlap.worker.dispose();

        // 3. After the access-token lifetime, the old key goes; so do its tokens.
        const done = await workerFor(to, { persist: dir, key: overlap.key });
        started.push(done);
        const after = await done.worker.request("GET", "/.well-known/jwks.json");
        assert.deepEqual(after.json, { keys: [overlap.key.publicJwk] });
        assertUnauthorized(assert, await done.worker.me(oldToken), "Invalid token");
        assert.equal((await done.worker.me(fresh.access_token)).status, 200);
      });
    });
  }
});

describe("JWT_ALGORITHM configuration fails closed", () => {
  for (const [label, vars] of [
    ["an ES256 key under JWT_ALGORITHM=RS256", () => ({ JWT_ALGORITHM: "RS256", JWT_SIGNING_KEY: generate("ES256").signingKey })],
    ["a public key as the signing key", () => ({ JWT_ALGORITHM: "ES256", JWT_SIGNING_KEY: JSON.stringify(generate("ES256").publicJwk) })],
    ["a private key among the verify keys", () => ({ JWT_ALGORITHM: "ES256", JWT_SIGNING_KEY: generate("ES256").signingKey, JWT_VERIFY_KEYS: generate("RS256").signingKey })],
    ["an unknown algorithm", () => ({ JWT_ALGORITHM: "HS256" })],
  ]) {
    test(`${label} answers 500 and names no key`, async () => {
      const settings = vars();
      const worker = await startWorker({ vars: settings });
      try {
        const response = await worker.request("GET", "/.well-known/jwks.json");
        assert.equal(response.status, 500, response.text);
        await sleep(50);
        const text = response.text + worker.logs.join("\n");
        for (const value of [settings.JWT_SIGNING_KEY, settings.JWT_VERIFY_KEYS].filter(Boolean)) {
          const parsed = JSON.parse(value);
          for (const member of ["d", "x", "n"]) {
            if (parsed[member]) assert.ok(!text.includes(parsed[member]), `${member} leaked`);
          }
        }
      } finally {
        await worker.dispose();
      }
    });
  }
});
