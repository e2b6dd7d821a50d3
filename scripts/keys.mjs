#!/usr/bin/env node
// Generates a token signing key: `npm run keys -- generate --alg ES256|RS256|EdDSA [--bits N]`.
// Prints the public part (a JWK with its kid, as /.well-known/jwks.json will publish it and
// as JWT_VERIFY_KEYS takes it during a rotation) and, as its last line, the private key
// exactly as JWT_SIGNING_KEY takes it: a JWK in JSON for ES256 and RS256, the base64url seed
// for EdDSA. Only node:crypto; the key never touches the disk.
import { createHash, generateKeyPairSync } from "node:crypto";

const ALGORITHMS = ["EdDSA", "ES256", "RS256"];

function usage(message) {
  if (message) console.error(message);
  console.error("usage: npm run keys -- generate --alg EdDSA|ES256|RS256 [--bits 2048|3072|4096]");
  process.exit(2);
}

/** RFC 7638 thumbprint: the required members in lexicographic order, SHA-256, base64url. */
export function thumbprint(jwk) {
  const required = { OKP: ["crv", "kty", "x"], EC: ["crv", "kty", "x", "y"], RSA: ["e", "kty", "n"] }[jwk.kty];
  const canonical = JSON.stringify(Object.fromEntries(required.map((name) => [name, jwk[name]])));
  return createHash("sha256").update(canonical).digest("base64url");
}

/** A fresh key pair for `alg`: `{ signingKey, publicJwk }` (`publicJwk` with kid, use, alg). */
export function generate(alg, bits = 2048) {
  const pair =
    alg === "EdDSA"
      ? generateKeyPairSync("ed25519")
      : alg === "ES256"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: bits });
  const privateJwk = pair.privateKey.export({ format: "jwk" });
  const publicJwk = pair.publicKey.export({ format: "jwk" });
  const described = { ...publicJwk, kid: thumbprint(publicJwk), use: "sig", alg };
  const signingKey = alg === "EdDSA" ? privateJwk.d : JSON.stringify({ ...privateJwk, alg });
  return { signingKey, publicJwk: described };
}

function main(argv) {
  const [command, ...rest] = argv;
  if (command !== "generate") usage(command ? `unknown command ${command}` : undefined);
  let alg = "EdDSA";
  let bits = 2048;
  for (let i = 0; i < rest.length; i += 1) {
    if (rest[i] === "--alg") alg = rest[++i];
    else if (rest[i] === "--bits") bits = Number(rest[++i]);
    else usage(`unknown option ${rest[i]}`);
  }
  if (!ALGORITHMS.includes(alg)) usage(`--alg must be one of ${ALGORITHMS.join(", ")}`);
  if (alg === "RS256" && !(Number.isInteger(bits) && bits >= 2048 && bits <= 4096 && bits % 8 === 0)) {
    usage("--bits must be 2048 to 4096 (the service refuses shorter RSA keys)");
  }
  const { signingKey, publicJwk } = generate(alg, bits);
  console.log(`# ${alg} key ${publicJwk.kid}`);
  console.log("# Public part: add it to JWT_VERIFY_KEYS to keep accepting this key's tokens after it");
  console.log("# stops signing (the JWKS publishes it while it signs):");
  console.log(JSON.stringify(publicJwk));
  console.log(`# Private key: JWT_SIGNING_KEY, with JWT_ALGORITHM=${alg}. Keep it secret; the last line:`);
  console.log(signingKey);
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
