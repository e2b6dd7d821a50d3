//! Token signing keys: the three algorithms (EdDSA, ES256, RS256), reading keys from secrets,
//! their RFC 7638 thumbprints and public JWKs, and pure-Rust signatures.
//!
//! A key is pinned to exactly one algorithm by its type (Ed25519 → EdDSA, P-256 → ES256,
//! RSA → RS256); a JWK that names another `alg` is refused rather than reinterpreted. Keys come
//! as a JWK, a PEM (PKCS#8 for private keys, SPKI for public ones) or, for Ed25519, the bare
//! base64 forms the service always took. Errors name the setting and the problem, never a byte
//! of the key. The pure-Rust signatures here are what native tests use and what the Worker
//! falls back to should WebCrypto fail; the Worker's fast path is WebCrypto (`runtime`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::{
    Signature as P256Signature, SigningKey as P256SigningKey, VerifyingKey as P256VerifyingKey,
};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use rsa::pkcs1v15;
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The smallest RSA modulus accepted (NIST SP 800-131A; RFC 7518 §3.3 requires 2048).
pub const MIN_RSA_BITS: usize = 2048;

/// The JWS algorithms the service signs with. Nothing else is ever accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EdDSA,
    ES256,
    RS256,
}

impl Algorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Exactly one of the three names (case-sensitive, as JWS `alg` values are).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Algorithm::EdDSA),
            "ES256" => Some(Algorithm::ES256),
            "RS256" => Some(Algorithm::RS256),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be loaded. Reported as a configuration error; the service fails
/// closed. Each variant names the setting, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Missing(&'static str),
    Malformed(&'static str),
    /// A public key where the private one is needed.
    NotPrivate(&'static str),
    /// A private key where only public ones belong.
    NotPublic(&'static str),
    /// A key type, curve or JWK `alg`/`use` the service does not sign with.
    Unsupported(&'static str),
    /// The signing key's algorithm is not `JWT_ALGORITHM`.
    WrongAlgorithm {
        setting: &'static str,
        key: Algorithm,
        expected: Algorithm,
    },
    RsaTooShort {
        setting: &'static str,
        bits: usize,
    },
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Missing(name) => write!(f, "{name} is not set"),
            KeyError::Malformed(name) => write!(
                f,
                "{name} must be base64 of a 32-byte Ed25519 key (seed for the signing key, public key for verify keys), a JWK, or a PEM (PKCS#8 private key, SPKI public key)"
            ),
            KeyError::NotPrivate(name) => {
                write!(f, "{name} must be a private key, but a public key was given")
            }
            KeyError::NotPublic(name) => write!(
                f,
                "{name} must hold public keys only, but a private key was given"
            ),
            KeyError::Unsupported(name) => write!(
                f,
                "{name} holds a key type, curve or alg other than Ed25519/EdDSA, P-256/ES256 or RSA/RS256"
            ),
            KeyError::WrongAlgorithm {
                setting,
                key,
                expected,
            } => write!(
                f,
                "{setting} is a {key} key but JWT_ALGORITHM is {expected}"
            ),
            KeyError::RsaTooShort { setting, bits } => write!(
                f,
                "{setting} holds a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            ),
        }
    }
}

/// A key that verifies signatures, pinned to one algorithm by its type.
#[derive(Clone)]
pub enum PublicKey {
    Ed25519(ed25519_compact::PublicKey),
    P256(P256VerifyingKey),
    Rsa(RsaPublicKey),
}

/// A key that signs, pinned to one algorithm by its type.
#[derive(Clone)]
pub enum PrivateKey {
    Ed25519(ed25519_compact::KeyPair),
    P256(P256SigningKey),
    Rsa(Box<RsaPrivateKey>),
}

// Key material never reaches a log line, not even through a stray `{:?}`.
impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.algorithm())
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.algorithm())
    }
}

/// The public members of a JWK (RFC 7517/7518/8037), as the JWKS publishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: Option<&'static str>,
    pub x: Option<String>,
    pub y: Option<String>,
    pub n: Option<String>,
    pub e: Option<String>,
    pub alg: Algorithm,
}

impl PublicJwk {
    /// The JWK as JSON with `kid`, `use` and `alg` (what WebCrypto imports and the key tool
    /// prints).
    pub fn to_json(&self, kid: &str) -> String {
        let mut object = Map::new();
        object.insert("kty".into(), self.kty.into());
        for (name, value) in [
            ("crv", self.crv.map(str::to_owned)),
            ("x", self.x.clone()),
            ("y", self.y.clone()),
            ("n", self.n.clone()),
            ("e", self.e.clone()),
        ] {
            if let Some(value) = value {
                object.insert(name.into(), value.into());
            }
        }
        object.insert("kid".into(), kid.into());
        object.insert("use".into(), "sig".into());
        object.insert("alg".into(), self.alg.as_str().into());
        Value::Object(object).to_string()
    }
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl PublicKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
            PublicKey::P256(_) => Algorithm::ES256,
            PublicKey::Rsa(_) => Algorithm::RS256,
        }
    }

    /// The public JWK members.
    pub fn jwk(&self) -> PublicJwk {
        let empty = PublicJwk {
            kty: "",
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            alg: self.algorithm(),
        };
        match self {
            PublicKey::Ed25519(key) => PublicJwk {
                kty: "OKP",
                crv: Some("Ed25519"),
                x: Some(b64url(key.as_ref())),
                ..empty
            },
            PublicKey::P256(key) => {
                let point = key.to_encoded_point(false);
                PublicJwk {
                    kty: "EC",
                    crv: Some("P-256"),
                    x: point.x().map(|x| b64url(x)),
                    y: point.y().map(|y| b64url(y)),
                    ..empty
                }
            }
            PublicKey::Rsa(key) => PublicJwk {
                kty: "RSA",
                n: Some(b64url(&key.n().to_bytes_be())),
                e: Some(b64url(&key.e().to_bytes_be())),
                ..empty
            },
        }
    }

    /// RFC 7638 thumbprint (SHA-256, base64url): the required members in lexicographic
    /// order, no whitespace.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        let canonical = match self {
            PublicKey::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, text(&jwk.x))
            }
            PublicKey::P256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                text(&jwk.x),
                text(&jwk.y)
            ),
            PublicKey::Rsa(_) => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                text(&jwk.e),
                text(&jwk.n)
            ),
        };
        b64url(&Sha256::digest(canonical.as_bytes()))
    }

    /// The length every signature by this key has: 64 bytes for EdDSA and ES256 (JWS's
    /// `R || S`), the modulus length for RS256.
    pub fn signature_len(&self) -> usize {
        match self {
            PublicKey::Ed25519(_) | PublicKey::P256(_) => 64,
            PublicKey::Rsa(key) => key.size(),
        }
    }

    /// The raw 32-byte Ed25519 key (WebCrypto imports it as `raw`).
    pub fn ed25519_bytes(&self) -> Option<&[u8]> {
        match self {
            PublicKey::Ed25519(key) => Some(key.as_ref()),
            _ => None,
        }
    }

    /// Whether `signature` is this key's signature of `message`, in pure Rust.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(key) => ed25519_compact::Signature::from_slice(signature)
                .map(|signature| key.verify(message, &signature).is_ok())
                .unwrap_or(false),
            PublicKey::P256(key) => P256Signature::from_slice(signature)
                .map(|signature| key.verify(message, &signature).is_ok())
                .unwrap_or(false),
            PublicKey::Rsa(key) => pkcs1v15::Signature::try_from(signature)
                .map(|signature| {
                    pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message, &signature)
                        .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

impl PrivateKey {
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PrivateKey::Ed25519(_) => Algorithm::EdDSA,
            PrivateKey::P256(_) => Algorithm::ES256,
            PrivateKey::Rsa(_) => Algorithm::RS256,
        }
    }

    pub fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Ed25519(pair) => PublicKey::Ed25519(pair.pk),
            PrivateKey::P256(key) => PublicKey::P256(*key.verifying_key()),
            PrivateKey::Rsa(key) => PublicKey::Rsa(key.to_public_key()),
        }
    }

    /// Sign `message` in pure Rust (Ed25519; ECDSA with RFC 6979 nonces; RSASSA-PKCS1-v1_5
    /// with SHA-256). `None` only if the signature library refuses.
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            PrivateKey::Ed25519(pair) => Some(pair.sk.sign(message, None).to_vec()),
            PrivateKey::P256(key) => {
                let signature: P256Signature = key.try_sign(message).ok()?;
                Some(signature.to_bytes().to_vec())
            }
            PrivateKey::Rsa(key) => pkcs1v15::SigningKey::<Sha256>::new((**key).clone())
                .try_sign(message)
                .ok()
                .map(|signature| signature.to_vec()),
        }
    }

    /// The key as PKCS#8 DER, for WebCrypto's `importKey("pkcs8")`.
    pub fn pkcs8_der(&self) -> Option<Vec<u8>> {
        let document = match self {
            PrivateKey::Ed25519(pair) => {
                let mut der = ED25519_PKCS8_PREFIX.to_vec();
                der.extend_from_slice(pair.sk.seed().as_ref());
                return Some(der);
            }
            PrivateKey::P256(key) => key.to_pkcs8_der().ok()?,
            PrivateKey::Rsa(key) => key.to_pkcs8_der().ok()?,
        };
        Some(document.as_bytes().to_vec())
    }
}

/// The DER prefix of an Ed25519 PKCS#8 private key (RFC 8410 §7), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// The DER prefix of an Ed25519 SPKI public key (RFC 8410 §4), followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The 32 bytes of the legacy Ed25519 form: base64url or base64.
fn legacy_bytes(text: &str, setting: &'static str) -> Result<[u8; 32], KeyError> {
    let trimmed = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(trimmed))
        .map_err(|_| KeyError::Malformed(setting))?;
    bytes.try_into().map_err(|_| KeyError::Malformed(setting))
}

/// Secrets pasted through a single-line channel often carry `\n` literally.
fn unescape_newlines(text: &str) -> String {
    text.replace("\\n", "\n")
}

/// Every PEM block in `text` as `(label, DER)`.
fn pem_blocks(text: &str, setting: &'static str) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let text = unescape_newlines(text);
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let (label, after) = after
            .split_once("-----")
            .ok_or(KeyError::Malformed(setting))?;
        let footer = format!("-----END {label}-----");
        let (body, after) = after
            .split_once(footer.as_str())
            .ok_or(KeyError::Malformed(setting))?;
        let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| KeyError::Malformed(setting))?;
        blocks.push((label.to_owned(), der));
        rest = after;
    }
    if blocks.is_empty() {
        return Err(KeyError::Malformed(setting));
    }
    Ok(blocks)
}

fn checked_rsa_public(key: RsaPublicKey, setting: &'static str) -> Result<RsaPublicKey, KeyError> {
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::RsaTooShort { setting, bits });
    }
    Ok(key)
}

fn private_from_pkcs8(der: &[u8], setting: &'static str) -> Result<PrivateKey, KeyError> {
    if der.len() == 48 && der[..16] == ED25519_PKCS8_PREFIX {
        let seed: [u8; 32] = der[16..]
            .try_into()
            .map_err(|_| KeyError::Malformed(setting))?;
        return Ok(PrivateKey::Ed25519(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new(seed),
        )));
    }
    if let Ok(key) = P256SigningKey::from_pkcs8_der(der) {
        return Ok(PrivateKey::P256(key));
    }
    let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| KeyError::Malformed(setting))?;
    checked_rsa_private(key, setting)
}

fn checked_rsa_private(key: RsaPrivateKey, setting: &'static str) -> Result<PrivateKey, KeyError> {
    key.validate().map_err(|_| KeyError::Malformed(setting))?;
    checked_rsa_public(key.to_public_key(), setting)?;
    Ok(PrivateKey::Rsa(Box::new(key)))
}

fn public_from_spki(der: &[u8], setting: &'static str) -> Result<PublicKey, KeyError> {
    if der.len() == 44 && der[..12] == ED25519_SPKI_PREFIX {
        return ed25519_compact::PublicKey::from_slice(&der[12..])
            .map(PublicKey::Ed25519)
            .map_err(|_| KeyError::Malformed(setting));
    }
    if let Ok(key) = P256VerifyingKey::from_public_key_der(der) {
        return Ok(PublicKey::P256(key));
    }
    let key = RsaPublicKey::from_public_key_der(der).map_err(|_| KeyError::Malformed(setting))?;
    Ok(PublicKey::Rsa(checked_rsa_public(key, setting)?))
}

/// A JWK member as base64url bytes.
fn member(
    object: &Map<String, Value>,
    name: &str,
    setting: &'static str,
) -> Result<Vec<u8>, KeyError> {
    let text = object
        .get(name)
        .and_then(Value::as_str)
        .ok_or(KeyError::Malformed(setting))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::Malformed(setting))
}

fn member32(
    object: &Map<String, Value>,
    name: &str,
    setting: &'static str,
) -> Result<[u8; 32], KeyError> {
    member(object, name, setting)?
        .try_into()
        .map_err(|_| KeyError::Malformed(setting))
}

/// A parsed JWK: the public key, and the private one when `d` is present.
fn from_jwk(
    object: &Map<String, Value>,
    setting: &'static str,
) -> Result<(PublicKey, Option<PrivateKey>), KeyError> {
    let text = |name: &str| object.get(name).and_then(Value::as_str);
    let has_private = object.contains_key("d");
    let (public, private) = match (text("kty"), text("crv")) {
        (Some("OKP"), Some("Ed25519")) => {
            let public = ed25519_compact::PublicKey::new(member32(object, "x", setting)?);
            let private = if has_private {
                let pair = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(
                    member32(object, "d", setting)?,
                ));
                // The published half must be the private key's, or tokens would never verify.
                if pair.pk != public {
                    return Err(KeyError::Malformed(setting));
                }
                Some(PrivateKey::Ed25519(pair))
            } else {
                None
            };
            (PublicKey::Ed25519(public), private)
        }
        (Some("EC"), Some("P-256")) => {
            let mut point = vec![0x04];
            point.extend_from_slice(&member32(object, "x", setting)?);
            point.extend_from_slice(&member32(object, "y", setting)?);
            let public = P256VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| KeyError::Malformed(setting))?;
            let private = if has_private {
                let key = P256SigningKey::from_slice(&member32(object, "d", setting)?)
                    .map_err(|_| KeyError::Malformed(setting))?;
                if *key.verifying_key() != public {
                    return Err(KeyError::Malformed(setting));
                }
                Some(PrivateKey::P256(key))
            } else {
                None
            };
            (PublicKey::P256(public), private)
        }
        (Some("RSA"), _) => {
            let n = BigUint::from_bytes_be(&member(object, "n", setting)?);
            let e = BigUint::from_bytes_be(&member(object, "e", setting)?);
            let public = RsaPublicKey::new(n.clone(), e.clone())
                .map_err(|_| KeyError::Malformed(setting))?;
            let public = checked_rsa_public(public, setting)?;
            let private = if has_private {
                let d = BigUint::from_bytes_be(&member(object, "d", setting)?);
                let p = BigUint::from_bytes_be(&member(object, "p", setting)?);
                let q = BigUint::from_bytes_be(&member(object, "q", setting)?);
                let key = RsaPrivateKey::from_components(n, e, d, vec![p, q])
                    .map_err(|_| KeyError::Malformed(setting))?;
                Some(checked_rsa_private(key, setting)?)
            } else {
                None
            };
            (PublicKey::Rsa(public), private)
        }
        (Some(_), _) => return Err(KeyError::Unsupported(setting)),
        (None, _) => return Err(KeyError::Malformed(setting)),
    };
    // A JWK may state its algorithm and use; both must agree with the key's pinned one.
    if let Some(alg) = object.get("alg") {
        if alg.as_str() != Some(public.algorithm().as_str()) {
            return Err(KeyError::Unsupported(setting));
        }
    }
    if let Some(key_use) = object.get("use") {
        if key_use.as_str() != Some("sig") {
            return Err(KeyError::Unsupported(setting));
        }
    }
    Ok((public, private))
}

/// The signing keys of a sign-in provider's JWKS document (`{"keys":[…]}`), each with its
/// `kid`. Unlike the service's own settings, a provider's set is not ours to refuse whole:
/// it may hold encryption keys, key types or curves this service does not use, or keys too
/// weak to trust, and those are skipped, so one odd key cannot stop every sign-in. Only
/// RS256 and ES256 keys are kept (what id_tokens are accepted with), never a private one.
pub fn provider_signing_keys(document: &Value) -> Vec<(Option<String>, PublicKey)> {
    const SETTING: &str = "provider JWKS";
    let Some(Value::Array(items)) = document.get("keys") else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Value::as_object)
        .filter(|object| !object.contains_key("d"))
        .filter_map(|object| {
            let (public, _) = from_jwk(object, SETTING).ok()?;
            if public.algorithm() == Algorithm::EdDSA {
                return None;
            }
            let kid = object.get("kid").and_then(Value::as_str).map(str::to_owned);
            Some((kid, public))
        })
        .collect()
}

fn looks_like_pem(text: &str) -> bool {
    text.contains("-----BEGIN ")
}

/// The signing key from `JWT_SIGNING_KEY`: a private JWK, a PKCS#8 PEM, or (Ed25519) the
/// base64 of a 32-byte seed.
pub fn parse_private(text: &str, setting: &'static str) -> Result<PrivateKey, KeyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(KeyError::Missing(setting));
    }
    if trimmed.starts_with('{') {
        let value: Value =
            serde_json::from_str(trimmed).map_err(|_| KeyError::Malformed(setting))?;
        let object = value.as_object().ok_or(KeyError::Malformed(setting))?;
        let (_, private) = from_jwk(object, setting)?;
        return private.ok_or(KeyError::NotPrivate(setting));
    }
    if looks_like_pem(trimmed) {
        let blocks = pem_blocks(trimmed, setting)?;
        let [(label, der)] = blocks.as_slice() else {
            return Err(KeyError::Malformed(setting));
        };
        return match label.as_str() {
            "PRIVATE KEY" => private_from_pkcs8(der, setting),
            "PUBLIC KEY" => Err(KeyError::NotPrivate(setting)),
            _ => Err(KeyError::Malformed(setting)),
        };
    }
    let seed = legacy_bytes(trimmed, setting)?;
    Ok(PrivateKey::Ed25519(ed25519_compact::KeyPair::from_seed(
        ed25519_compact::Seed::new(seed),
    )))
}

/// The verify-only keys from `JWT_VERIFY_KEYS`: a JWK set (`{"keys":[…]}`, the JWKS document
/// itself), a JSON array of JWKs, one JWK, SPKI PEM blocks, or comma-separated base64 Ed25519
/// public keys. Public keys only.
pub fn parse_public_list(text: &str, setting: &'static str) -> Result<Vec<PublicKey>, KeyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value =
            serde_json::from_str(trimmed).map_err(|_| KeyError::Malformed(setting))?;
        let items = match &value {
            Value::Array(items) => items.clone(),
            Value::Object(object) => match object.get("keys") {
                Some(Value::Array(items)) => items.clone(),
                Some(_) => return Err(KeyError::Malformed(setting)),
                None => vec![value.clone()],
            },
            _ => return Err(KeyError::Malformed(setting)),
        };
        return items
            .iter()
            .map(|item| {
                let object = item.as_object().ok_or(KeyError::Malformed(setting))?;
                match from_jwk(object, setting)? {
                    (_, Some(_)) => Err(KeyError::NotPublic(setting)),
                    (public, None) => Ok(public),
                }
            })
            .collect();
    }
    if looks_like_pem(trimmed) {
        return pem_blocks(trimmed, setting)?
            .iter()
            .map(|(label, der)| match label.as_str() {
                "PUBLIC KEY" => public_from_spki(der, setting),
                label if label.contains("PRIVATE") => Err(KeyError::NotPublic(setting)),
                _ => Err(KeyError::Malformed(setting)),
            })
            .collect();
    }
    trimmed
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let bytes = legacy_bytes(item, setting)?;
            ed25519_compact::PublicKey::from_slice(&bytes)
                .map(PublicKey::Ed25519)
                .map_err(|_| KeyError::Malformed(setting))
        })
        .collect()
}

#[cfg(test)]
mod pkcs8_tests {
    use super::*;

    #[test]
    fn an_ed25519_key_exports_the_pkcs8_document_it_would_be_read_from() {
        let seed = [7_u8; 32];
        let key = PrivateKey::Ed25519(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new(seed),
        ));
        let der = key.pkcs8_der().unwrap();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], ED25519_PKCS8_PREFIX);
        assert_eq!(der[16..], seed);
        let read_back = private_from_pkcs8(&der, "JWT_SIGNING_KEY").unwrap();
        assert_eq!(read_back.pkcs8_der(), Some(der));
    }
}
