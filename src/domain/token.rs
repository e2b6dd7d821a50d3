//! Access tokens: EdDSA (Ed25519) JWTs, the published key set, and verification.
//!
//! `jwt-compact` handles the token structure; this module pins what a verifier must pin: the
//! algorithm (`EdDSA` only, so `none` and HS256 confusion attacks fail before any crypto), the
//! key by `kid` (an RFC 7638 thumbprint), `iss`, `aud`, `exp`/`nbf` with a small leeway, and the
//! presence of every claim the service relies on. Revocation is checked by the caller, which
//! has the stores.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ed25519_compact::{KeyPair, PublicKey, SecretKey, Seed};
use jwt_compact::alg::Ed25519;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The service's own claims, beside `exp`, `nbf` and `iat` that `jwt-compact` manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// Unique token id, the key of the revocation list.
    pub jti: String,
    /// The session the token belongs to.
    pub sid: String,
    pub roles: Vec<String>,
    /// Whether the account's email address was verified when the token was issued.
    #[serde(default)]
    pub email_verified: bool,
}

/// A verified token's claims and its lifetime bounds (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: AccessClaims,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Why a key could not be loaded. Reported as a configuration error; the service fails closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Missing(&'static str),
    Malformed(&'static str),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Missing(name) => write!(f, "{name} is not set"),
            KeyError::Malformed(name) => write!(
                f,
                "{name} must be base64 of a 32-byte Ed25519 key (seed for the signing key, public key for verify keys)"
            ),
        }
    }
}

/// Why a token was refused. Every variant becomes a 401; the variant is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnsupportedAlgorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    MissingClaim,
}

impl TokenError {
    /// The sentence a client sees.
    pub fn detail(&self) -> &'static str {
        match self {
            TokenError::Expired => "Token has expired",
            _ => "Invalid token",
        }
    }
}

/// Who issues tokens, for whom, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: i64,
    pub leeway_seconds: i64,
}

/// One verifying key and its id.
#[derive(Debug, Clone)]
struct PublishedKey {
    kid: String,
    public: PublicKey,
}

/// The signing key plus every key tokens may still be verified with (for rotation).
#[derive(Debug, Clone)]
pub struct KeySet {
    signing_kid: String,
    signing: SecretKey,
    published: Vec<PublishedKey>,
}

fn decode_key_bytes(text: &str, name: &'static str) -> Result<[u8; 32], KeyError> {
    let trimmed = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(trimmed))
        .map_err(|_| KeyError::Malformed(name))?;
    bytes.try_into().map_err(|_| KeyError::Malformed(name))
}

/// RFC 7638 thumbprint of an Ed25519 public key, base64url.
fn thumbprint(public: &PublicKey) -> String {
    let jwk = JsonWebKey::from(public);
    URL_SAFE_NO_PAD.encode(jwk.thumbprint::<Sha256>())
}

impl KeySet {
    /// Build from the signing seed (base64 or base64url, 32 bytes) and optional older public
    /// keys that stay valid for verification during a rotation.
    pub fn from_config(signing_seed: &str, previous_public: &[&str]) -> Result<Self, KeyError> {
        if signing_seed.trim().is_empty() {
            return Err(KeyError::Missing("JWT_SIGNING_KEY"));
        }
        let seed = decode_key_bytes(signing_seed, "JWT_SIGNING_KEY")?;
        let pair = KeyPair::from_seed(Seed::new(seed));
        let signing_kid = thumbprint(&pair.pk);
        let mut published = vec![PublishedKey {
            kid: signing_kid.clone(),
            public: pair.pk,
        }];
        for text in previous_public
            .iter()
            .filter(|text| !text.trim().is_empty())
        {
            let bytes = decode_key_bytes(text, "JWT_VERIFY_KEYS")?;
            let public = PublicKey::from_slice(&bytes)
                .map_err(|_| KeyError::Malformed("JWT_VERIFY_KEYS"))?;
            let kid = thumbprint(&public);
            if published.iter().all(|key| key.kid != kid) {
                published.push(PublishedKey { kid, public });
            }
        }
        Ok(Self {
            signing_kid,
            signing: pair.sk,
            published,
        })
    }

    /// The `kid` new tokens carry.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Every published key as `(kid, x)`, `x` being the public key in base64url (RFC 8037),
    /// signing key first: what `/.well-known/jwks.json` lists. Never a private part.
    pub fn public_keys(&self) -> Vec<(&str, String)> {
        self.published
            .iter()
            .map(|key| {
                (
                    key.kid.as_str(),
                    URL_SAFE_NO_PAD.encode(key.public.as_ref()),
                )
            })
            .collect()
    }

    /// The raw 32-byte public key for a `kid` (for a platform verifier such as WebCrypto).
    pub fn public_key_bytes(&self, kid: &str) -> Option<&[u8]> {
        self.verifying_key(kid).map(|key| key.as_ref())
    }

    fn verifying_key(&self, kid: &str) -> Option<&PublicKey> {
        self.published
            .iter()
            .find(|key| key.kid == kid)
            .map(|key| &key.public)
    }
}

fn at(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Sign an access token. `now` is unix seconds; returns the compact JWT.
pub fn sign(
    keys: &KeySet,
    settings: &TokenSettings,
    claims: AccessClaims,
    now: i64,
) -> Result<String, TokenError> {
    let header = Header::empty()
        .with_key_id(keys.signing_kid.clone())
        .with_token_type("JWT");
    let mut full = Claims::new(claims);
    full.issued_at = Some(at(now));
    full.not_before = Some(at(now));
    full.expiration = Some(at(now + settings.ttl_seconds));
    Ed25519
        .token(&header, &full, &keys.signing)
        .map_err(|_| TokenError::Malformed)
}

/// A token whose header passed the checks, waiting for its signature to be verified.
pub struct PendingToken<'a> {
    untrusted: UntrustedToken<'a>,
    /// The key the header names (already known to be one of ours).
    pub kid: String,
    /// What the signature covers: `base64url(header) . base64url(payload)`.
    pub signing_input: &'a str,
}

impl PendingToken<'_> {
    /// The raw signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.untrusted.signature_bytes()
    }
}

/// First half of verification: parse, pin the algorithm to EdDSA, and find the key. The
/// signature is checked by the caller — natively with [`verify`], in the Worker with
/// WebCrypto — and then [`validate_claims`] finishes.
pub fn inspect<'a>(keys: &KeySet, token: &'a str) -> Result<PendingToken<'a>, TokenError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
    if untrusted.algorithm() != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    let kid = untrusted
        .header()
        .key_id
        .clone()
        .ok_or(TokenError::UnknownKey)?;
    if keys.verifying_key(&kid).is_none() {
        return Err(TokenError::UnknownKey);
    }
    if untrusted.signature_bytes().len() != 64 {
        return Err(TokenError::BadSignature);
    }
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or(TokenError::Malformed)?;
    Ok(PendingToken {
        untrusted,
        kid,
        signing_input,
    })
}

/// Second half of verification, once the signature is known good: claims, lifetime,
/// issuer and audience. `now` is unix seconds.
pub fn validate_claims(
    pending: &PendingToken<'_>,
    settings: &TokenSettings,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let claims = pending
        .untrusted
        .deserialize_claims_unchecked::<AccessClaims>()
        .map_err(|_| TokenError::MissingClaim)?;
    let time = TimeOptions::new(Duration::seconds(settings.leeway_seconds), || at(now));
    claims
        .validate_expiration(&time)
        .map_err(|error| match error {
            ValidationError::NoClaim(_) => TokenError::MissingClaim,
            _ => TokenError::Expired,
        })?;
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&time)
            .map_err(|_| TokenError::NotYetValid)?;
    }
    let custom = &claims.custom;
    if custom.iss != settings.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if custom.aud != settings.audience {
        return Err(TokenError::WrongAudience);
    }
    if custom.sub.is_empty() || custom.jti.is_empty() || custom.sid.is_empty() {
        return Err(TokenError::MissingClaim);
    }
    let issued_at = claims
        .issued_at
        .ok_or(TokenError::MissingClaim)?
        .timestamp();
    let expires_at = claims
        .expiration
        .ok_or(TokenError::MissingClaim)?
        .timestamp();
    Ok(VerifiedToken {
        claims: custom.clone(),
        issued_at,
        expires_at,
    })
}

/// Verify an access token completely, except for revocation, with the pure-Rust Ed25519
/// implementation. `now` is unix seconds.
pub fn verify(
    keys: &KeySet,
    settings: &TokenSettings,
    token: &str,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let pending = inspect(keys, token)?;
    let public = keys
        .verifying_key(&pending.kid)
        .ok_or(TokenError::UnknownKey)?;
    let signature = ed25519_compact::Signature::from_slice(pending.signature())
        .map_err(|_| TokenError::BadSignature)?;
    public
        .verify(pending.signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    validate_claims(&pending, settings, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const OTHER_SEED: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    const NOW: i64 = 1_790_000_000;

    fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "https://auth.example".into(),
            audience: "example-app".into(),
            ttl_seconds: 900,
            leeway_seconds: 30,
        }
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            aud: "example-app".into(),
            sub: "8b0f4a4e-2f1c-4a77-9a61-0f4d1c2b3a40".into(),
            jti: "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b".into(),
            sid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
            roles: vec!["user".into()],
            email_verified: true,
        }
    }

    fn keys() -> KeySet {
        KeySet::from_config(SEED, &[]).unwrap()
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    #[test]
    fn signed_token_verifies_with_its_claims() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW).unwrap();
        let verified = verify(&keys, &settings(), &token, NOW + 10).unwrap();
        assert_eq!(verified.claims, claims());
        assert_eq!(verified.issued_at, NOW);
        assert_eq!(verified.expires_at, NOW + 900);
    }

    #[test]
    fn header_names_eddsa_and_the_key_thumbprint() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW).unwrap();
        let header = UntrustedToken::new(&token).unwrap();
        assert_eq!(header.algorithm(), "EdDSA");
        assert_eq!(header.header().key_id.as_deref(), Some(keys.signing_kid()));
        assert_eq!(keys.signing_kid().len(), 43);
    }

    #[test]
    fn expired_tokens_fail_after_the_leeway() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW).unwrap();
        assert!(verify(&keys, &settings(), &token, NOW + 900 + 30).is_ok());
        assert_eq!(
            verify(&keys, &settings(), &token, NOW + 900 + 31),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tokens_from_the_future_are_refused() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW + 120).unwrap();
        assert_eq!(
            verify(&keys, &settings(), &token, NOW),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW).unwrap();
        let mut other_audience = settings();
        other_audience.audience = "another-app".into();
        assert_eq!(
            verify(&keys, &other_audience, &token, NOW),
            Err(TokenError::WrongAudience)
        );
        let mut other_issuer = settings();
        other_issuer.issuer = "https://evil.example".into();
        assert_eq!(
            verify(&keys, &other_issuer, &token, NOW),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn tampered_payload_fails_the_signature() {
        let keys = keys();
        let token = sign(&keys, &settings(), claims(), NOW).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged_claims = claims();
        forged_claims.roles = vec!["admin".into()];
        let mut payload = serde_json::to_value(&forged_claims).unwrap();
        payload["exp"] = json!(NOW + 900);
        payload["iat"] = json!(NOW);
        let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(
            verify(&keys, &settings(), &forged, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = keys();
        let header = json!({"alg": "none", "typ": "JWT", "kid": keys.signing_kid()});
        let mut payload = serde_json::to_value(claims()).unwrap();
        payload["exp"] = json!(NOW + 900);
        let token = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(
            verify(&keys, &settings(), &token, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn hs256_token_keyed_with_the_public_key_is_refused() {
        // The classic confusion: an attacker MACs a token with the (public) verification key.
        use jwt_compact::alg::{Hs256, Hs256Key};
        let keys = keys();
        let public_bytes = URL_SAFE_NO_PAD.decode(&keys.public_keys()[0].1).unwrap();
        let header = Header::empty().with_key_id(keys.signing_kid().to_owned());
        let mut full = Claims::new(claims());
        full.expiration = Some(at(NOW + 900));
        full.issued_at = Some(at(NOW));
        let token = Hs256
            .token(&header, &full, &Hs256Key::new(public_bytes))
            .unwrap();
        assert_eq!(
            verify(&keys, &settings(), &token, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let keys = keys();
        let other = KeySet::from_config(OTHER_SEED, &[]).unwrap();
        let token = sign(&other, &settings(), claims(), NOW).unwrap();
        assert_eq!(
            verify(&keys, &settings(), &token, NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn a_foreign_signature_under_our_kid_is_refused() {
        let keys = keys();
        let other = KeySet::from_config(OTHER_SEED, &[]).unwrap();
        let ours = sign(&keys, &settings(), claims(), NOW).unwrap();
        let theirs = sign(&other, &settings(), claims(), NOW).unwrap();
        let ours_parts: Vec<&str> = ours.split('.').collect();
        let theirs_parts: Vec<&str> = theirs.split('.').collect();
        let spliced = format!("{}.{}.{}", ours_parts[0], ours_parts[1], theirs_parts[2]);
        assert_eq!(
            verify(&keys, &settings(), &spliced, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let keys = keys();
        for garbage in ["", "abc", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9"] {
            assert!(
                verify(&keys, &settings(), garbage, NOW).is_err(),
                "{garbage}"
            );
        }
    }

    #[test]
    fn previous_keys_still_verify_and_are_published() {
        let old = KeySet::from_config(OTHER_SEED, &[]).unwrap();
        let old_public = old.public_keys()[0].1.clone();
        let rotated = KeySet::from_config(SEED, &[old_public.as_str()]).unwrap();
        let old_token = sign(&old, &settings(), claims(), NOW).unwrap();
        assert!(verify(&rotated, &settings(), &old_token, NOW).is_ok());
        let published = rotated.public_keys();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].0, rotated.signing_kid());
        assert_eq!(published[1].0, old.signing_kid());
    }

    #[test]
    fn missing_or_malformed_keys_fail_closed() {
        assert_eq!(
            KeySet::from_config("", &[]).unwrap_err(),
            KeyError::Missing("JWT_SIGNING_KEY")
        );
        assert_eq!(
            KeySet::from_config("c2hvcnQ", &[]).unwrap_err(),
            KeyError::Malformed("JWT_SIGNING_KEY")
        );
        assert_eq!(
            KeySet::from_config(SEED, &["not base64!"]).unwrap_err(),
            KeyError::Malformed("JWT_VERIFY_KEYS")
        );
    }

    #[test]
    fn standard_base64_seeds_are_accepted() {
        let standard = STANDARD.encode(URL_SAFE_NO_PAD.decode(SEED).unwrap());
        let a = KeySet::from_config(SEED, &[]).unwrap();
        let b = KeySet::from_config(&standard, &[]).unwrap();
        assert_eq!(a.signing_kid(), b.signing_kid());
    }

    #[test]
    fn published_keys_are_32_byte_public_keys() {
        let keys = keys();
        let published = keys.public_keys();
        assert_eq!(published[0].0, keys.signing_kid());
        assert_eq!(URL_SAFE_NO_PAD.decode(&published[0].1).unwrap().len(), 32);
    }
}
