// A software passkey authenticator for the suites that talk to the Worker over HTTP: it
// answers creation and request options (as the JSON the Worker sends) the way a browser and
// a platform authenticator would, with one ES256 discoverable credential, and gives the
// answers as `PublicKeyCredential.toJSON()` does. What it puts in the client data (the
// origin, the ceremony type) and the authenticator data (the counter) can be changed, so a
// suite can produce an answer for another origin or a counter that goes back.
//
//   const device = softAuthenticator({ origin: "https://auth.test" });
//   const created = device.create(creationOptionsJson);   // POST .../passkeys {response: created}
//   const asserted = device.get(requestOptionsJson);      // POST .../passkey/verify {response: asserted}
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** The head of a CBOR item: major type and argument. */
function head(major, value) {
  if (value < 24) return Buffer.from([(major << 5) | value]);
  if (value < 0x100) return Buffer.from([(major << 5) | 24, value]);
  if (value < 0x10000) return Buffer.from([(major << 5) | 25, value >> 8, value & 0xff]);
  const out = Buffer.alloc(5);
  out[0] = (major << 5) | 26;
  out.writeUInt32BE(value, 1);
  return out;
}

/** CBOR for what WebAuthn needs: integers, byte strings (Buffers), text and maps (arrays of pairs). */
export function cbor(value) {
  if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === "string") {
    const bytes = Buffer.from(value, "utf8");
    return Buffer.concat([head(3, bytes.length), bytes]);
  }
  if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
  if (Array.isArray(value)) {
    return Buffer.concat([head(5, value.length), ...value.flatMap(([key, item]) => [cbor(key), cbor(item)])]);
  }
  throw new Error(`cannot encode ${typeof value}`);
}

const sha256 = (data) => createHash("sha256").update(data).digest();

/** A software authenticator with one ES256 credential. */
export function softAuthenticator({ origin, counter = 0 } = {}) {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const credentialId = randomBytes(16);
  const coseKey = cbor([
    [1, 2],
    [3, -7],
    [-1, 1],
    [-2, Buffer.from(jwk.x, "base64url")],
    [-3, Buffer.from(jwk.y, "base64url")],
  ]);
  const device = {
    origin,
    counter,
    credentialId: b64url(credentialId),
    userHandle: undefined,
    /** Flags: UP | UV, and AT when attested. */
    authenticatorData(rpId, attested) {
      const count = Buffer.alloc(4);
      count.writeUInt32BE(device.counter >>> 0);
      const parts = [sha256(rpId), Buffer.from([attested ? 0x45 : 0x05]), count];
      if (attested) {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(credentialId.length);
        parts.push(Buffer.alloc(16), length, credentialId, coseKey);
      }
      return Buffer.concat(parts);
    },
    clientData(type, challenge) {
      return Buffer.from(JSON.stringify({ type, challenge, origin: device.origin, crossOrigin: false }));
    },
    /** The answer to creation options, as `create()` and `toJSON()` give it. */
    create(options) {
      device.userHandle = options.user.id;
      const clientData = device.clientData("webauthn.create", options.challenge);
      const authData = device.authenticatorData(options.rp.id, true);
      const attestationObject = cbor([
        ["fmt", "none"],
        ["attStmt", []],
        ["authData", authData],
      ]);
      return {
        id: b64url(credentialId),
        rawId: b64url(credentialId),
        type: "public-key",
        response: { clientDataJSON: b64url(clientData), attestationObject: b64url(attestationObject), transports: ["internal"] },
        clientExtensionResults: {},
      };
    },
    /** The answer to request options; the counter moves on by one first. */
    get(options) {
      device.counter += 1;
      const clientData = device.clientData("webauthn.get", options.challenge);
      const authData = device.authenticatorData(options.rpId, false);
      const signature = sign("sha256", Buffer.concat([authData, sha256(clientData)]), privateKey);
      return {
        id: b64url(credentialId),
        rawId: b64url(credentialId),
        type: "public-key",
        response: {
          clientDataJSON: b64url(clientData),
          authenticatorData: b64url(authData),
          signature: b64url(signature),
          userHandle: device.userHandle,
        },
        clientExtensionResults: {},
      };
    },
  };
  return device;
}
