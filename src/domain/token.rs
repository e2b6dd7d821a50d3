//! Access tokens: JWTs signed with EdDSA (the default), ES256 or RS256, the published key
//! set, and verification.
//!
//! `jwt-compact` handles the token structure; this module pins what a verifier must pin: the
//! key by `kid` (an RFC 7638 thumbprint) and the algorithm to that key's one algorithm (so
//! `none`, HS256 keyed with a public key, or any other pairing fails before any crypto),
//! `iss`, `aud`, `exp`/`nbf` with a small leeway, and the presence of every claim the service
//! relies on. Revocation is checked by the caller, which has the stores.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::Ed25519;
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

use crate::domain::keys::{parse_private, parse_public_list};
pub use crate::domain::keys::{Algorithm, KeyError, PrivateKey, PublicJwk, PublicKey};

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
    /// How the session authenticated (RFC 8176 values: `pwd`, `otp`, `fed`; see
    /// `domain::mfa`). Absent from tokens issued before second factors existed.
    #[serde(default)]
    pub amr: Vec<String>,
    /// The session's assurance level: `aal1`, or `aal2` once it proved a second factor.
    #[serde(default = "default_aal")]
    pub aal: String,
}

fn default_aal() -> String {
    "aal1".into()
}

/// A verified token's claims and its lifetime bounds (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub claims: AccessClaims,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Why a token was refused. Every variant becomes a 401; the variant is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnsupportedAlgorithm,
    /// The header's `alg` is a supported one, but not the algorithm of the key its `kid` names.
    AlgorithmMismatch,
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

/// The signing key plus every key tokens may still be verified with (for rotation). Each key
/// keeps the one algorithm of its type; verify-only keys may be of another algorithm than the
/// signing key, so a migration (EdDSA to ES256, say) rotates like any other change of key.
#[derive(Debug, Clone)]
pub struct KeySet {
    signing_kid: String,
    signing: PrivateKey,
    published: Vec<PublishedKey>,
}

impl KeySet {
    /// Build from `JWT_ALGORITHM`, `JWT_SIGNING_KEY` (the private key) and `JWT_VERIFY_KEYS`
    /// (public keys still accepted during a rotation; see [`parse_public_list`]). The signing
    /// key must be of `algorithm`.
    pub fn from_config(
        algorithm: Algorithm,
        signing_key: &str,
        verify_keys: &str,
    ) -> Result<Self, KeyError> {
        let signing = parse_private(signing_key, "JWT_SIGNING_KEY")?;
        if signing.algorithm() != algorithm {
            return Err(KeyError::WrongAlgorithm {
                setting: "JWT_SIGNING_KEY",
                key: signing.algorithm(),
                expected: algorithm,
            });
        }
        let public = signing.public();
        let signing_kid = public.thumbprint();
        let mut published = vec![PublishedKey {
            kid: signing_kid.clone(),
            public,
        }];
        for public in parse_public_list(verify_keys, "JWT_VERIFY_KEYS")? {
            let kid = public.thumbprint();
            if published.iter().all(|key| key.kid != kid) {
                published.push(PublishedKey { kid, public });
            }
        }
        Ok(Self {
            signing_kid,
            signing,
            published,
        })
    }

    /// The `kid` new tokens carry.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The algorithm new tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.signing.algorithm()
    }

    /// The signing key (for a platform signer such as WebCrypto).
    pub fn signing_key(&self) -> &PrivateKey {
        &self.signing
    }

    /// Every published key as `(kid, public JWK members)`, signing key first: what
    /// `/.well-known/jwks.json` lists. Never a private part.
    pub fn public_jwks(&self) -> Vec<(&str, PublicJwk)> {
        self.published
            .iter()
            .map(|key| (key.kid.as_str(), key.public.jwk()))
            .collect()
    }

    /// Every published Ed25519 key as `(kid, x)`, `x` being the public key in base64url.
    pub fn public_keys(&self) -> Vec<(&str, String)> {
        self.public_jwks()
            .into_iter()
            .filter_map(|(kid, jwk)| Some((kid, jwk.x?)))
            .collect()
    }

    /// The public key a `kid` names.
    pub fn verifying_key(&self, kid: &str) -> Option<&PublicKey> {
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
///
/// EdDSA goes through `jwt-compact`; ES256 and RS256 are [`signing_input`], the key's
/// pure-Rust signature, and [`assemble`] (the Worker signs the same input with WebCrypto).
pub fn sign(
    keys: &KeySet,
    settings: &TokenSettings,
    claims: AccessClaims,
    now: i64,
) -> Result<String, TokenError> {
    if let PrivateKey::Ed25519(pair) = &keys.signing {
        let header = Header::empty()
            .with_key_id(keys.signing_kid.clone())
            .with_token_type("JWT");
        return Ed25519
            .token(&header, &full_claims(settings, claims, now), &pair.sk)
            .map_err(|_| TokenError::Malformed);
    }
    let input = signing_input(keys, settings, claims, now)?;
    let signature = keys
        .signing
        .sign(input.as_bytes())
        .ok_or(TokenError::Malformed)?;
    Ok(assemble(&input, &signature))
}

fn full_claims(settings: &TokenSettings, claims: AccessClaims, now: i64) -> Claims<AccessClaims> {
    let mut full = Claims::new(claims);
    full.issued_at = Some(at(now));
    full.not_before = Some(at(now));
    full.expiration = Some(at(now + settings.ttl_seconds));
    full
}

/// The JOSE header a token of ours carries, members in `jwt-compact`'s order.
#[derive(Serialize)]
struct JoseHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

/// What the signature of a new token covers: `base64url(header) . base64url(claims)`.
pub fn signing_input(
    keys: &KeySet,
    settings: &TokenSettings,
    claims: AccessClaims,
    now: i64,
) -> Result<String, TokenError> {
    let header = JoseHeader {
        alg: keys.algorithm().as_str(),
        kid: &keys.signing_kid,
        typ: "JWT",
    };
    let header = serde_json::to_vec(&header).map_err(|_| TokenError::Malformed)?;
    let payload = serde_json::to_vec(&full_claims(settings, claims, now))
        .map_err(|_| TokenError::Malformed)?;
    Ok(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    ))
}

/// The compact JWT from its signing input and signature.
pub fn assemble(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A token whose header passed the checks, waiting for its signature to be verified.
pub struct PendingToken<'a> {
    untrusted: UntrustedToken<'a>,
    /// The key the header names (already known to be one of ours).
    pub kid: String,
    /// The header's algorithm, already known to be that key's one algorithm.
    pub algorithm: Algorithm,
    /// What the signature covers: `base64url(header) . base64url(payload)`.
    pub signing_input: &'a str,
}

impl PendingToken<'_> {
    /// The raw signature bytes.
    pub fn signature(&self) -> &[u8] {
        self.untrusted.signature_bytes()
    }
}

/// First half of verification: parse, find the key by `kid`, and pin the algorithm to that
/// key's own. The signature is checked by the caller — natively with [`verify`], in the
/// Worker with WebCrypto — and then [`validate_claims`] finishes. Nothing here does crypto, so
/// a token naming another algorithm than its key's never reaches a verifier.
pub fn inspect<'a>(keys: &KeySet, token: &'a str) -> Result<PendingToken<'a>, TokenError> {
    let untrusted = UntrustedToken::new(token).map_err(|_| TokenError::Malformed)?;
    let algorithm =
        Algorithm::parse(untrusted.algorithm()).ok_or(TokenError::UnsupportedAlgorithm)?;
    let kid = untrusted
        .header()
        .key_id
        .clone()
        .ok_or(TokenError::UnknownKey)?;
    let key = keys.verifying_key(&kid).ok_or(TokenError::UnknownKey)?;
    if key.algorithm() != algorithm {
        return Err(TokenError::AlgorithmMismatch);
    }
    if untrusted.signature_bytes().len() != key.signature_len() {
        return Err(TokenError::BadSignature);
    }
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or(TokenError::Malformed)?;
    Ok(PendingToken {
        untrusted,
        kid,
        algorithm,
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

/// Verify an access token completely, except for revocation, with the pure-Rust
/// implementations. `now` is unix seconds.
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
    if !public.verify(pending.signing_input.as_bytes(), pending.signature()) {
        return Err(TokenError::BadSignature);
    }
    validate_claims(&pending, settings, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{json, Value};

    const SEED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const OTHER_SEED: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    const NOW: i64 = 1_790_000_000;

    pub(super) fn settings() -> TokenSettings {
        TokenSettings {
            issuer: "https://auth.example".into(),
            audience: "example-app".into(),
            ttl_seconds: 900,
            leeway_seconds: 30,
        }
    }

    pub(super) fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            aud: "example-app".into(),
            sub: "8b0f4a4e-2f1c-4a77-9a61-0f4d1c2b3a40".into(),
            jti: "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b".into(),
            sid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
            roles: vec!["user".into()],
            email_verified: true,
            amr: vec!["pwd".into(), "otp".into()],
            aal: "aal2".into(),
        }
    }

    fn keys() -> KeySet {
        KeySet::from_config(Algorithm::EdDSA, SEED, "").unwrap()
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
        let other = KeySet::from_config(Algorithm::EdDSA, OTHER_SEED, "").unwrap();
        let token = sign(&other, &settings(), claims(), NOW).unwrap();
        assert_eq!(
            verify(&keys, &settings(), &token, NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn a_foreign_signature_under_our_kid_is_refused() {
        let keys = keys();
        let other = KeySet::from_config(Algorithm::EdDSA, OTHER_SEED, "").unwrap();
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
        let old = KeySet::from_config(Algorithm::EdDSA, OTHER_SEED, "").unwrap();
        let old_public = old.public_keys()[0].1.clone();
        let rotated = KeySet::from_config(Algorithm::EdDSA, SEED, &old_public).unwrap();
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
            KeySet::from_config(Algorithm::EdDSA, "", "").unwrap_err(),
            KeyError::Missing("JWT_SIGNING_KEY")
        );
        assert_eq!(
            KeySet::from_config(Algorithm::EdDSA, "c2hvcnQ", "").unwrap_err(),
            KeyError::Malformed("JWT_SIGNING_KEY")
        );
        assert_eq!(
            KeySet::from_config(Algorithm::EdDSA, SEED, "not base64!").unwrap_err(),
            KeyError::Malformed("JWT_VERIFY_KEYS")
        );
    }

    #[test]
    fn standard_base64_seeds_are_accepted() {
        let standard = STANDARD.encode(URL_SAFE_NO_PAD.decode(SEED).unwrap());
        let a = KeySet::from_config(Algorithm::EdDSA, SEED, "").unwrap();
        let b = KeySet::from_config(Algorithm::EdDSA, &standard, "").unwrap();
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

/// ES256 and RS256 beside EdDSA: key forms, pinning and rotation across algorithms.
#[cfg(test)]
mod algorithm_tests {
    use super::tests::{claims, settings};
    use super::*;
    use serde_json::{json, Value};

    const NOW: i64 = 1_790_000_000;
    const ALL: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    fn fixtures() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap()
    }

    /// A fixture member as the text a secret would hold (JWKs as JSON, PEMs as they are).
    fn fixture(name: &str, form: &str) -> String {
        match &fixtures()[name][form] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        }
    }

    fn fixture_name(algorithm: Algorithm) -> &'static str {
        match algorithm {
            Algorithm::EdDSA => "ed25519",
            Algorithm::ES256 => "es256",
            Algorithm::RS256 => "rs256",
        }
    }

    fn keys(algorithm: Algorithm) -> KeySet {
        KeySet::from_config(
            algorithm,
            &fixture(fixture_name(algorithm), "private_jwk"),
            "",
        )
        .unwrap()
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    #[test]
    fn each_algorithm_signs_and_verifies_with_its_header() {
        for algorithm in ALL {
            let keys = keys(algorithm);
            let token = sign(&keys, &settings(), claims(), NOW).unwrap();
            let untrusted = UntrustedToken::new(&token).unwrap();
            assert_eq!(untrusted.algorithm(), algorithm.as_str());
            assert_eq!(
                untrusted.header().key_id.as_deref(),
                Some(keys.signing_kid())
            );
            let verified = verify(&keys, &settings(), &token, NOW + 5).unwrap();
            assert_eq!(verified.claims, claims(), "{algorithm}");
        }
    }

    #[test]
    fn jwk_and_pem_forms_of_a_key_are_the_same_key() {
        for algorithm in ALL {
            let name = fixture_name(algorithm);
            let from_jwk = keys(algorithm);
            let from_pem =
                KeySet::from_config(algorithm, &fixture(name, "private_pem"), "").unwrap();
            assert_eq!(
                from_jwk.signing_kid(),
                from_pem.signing_kid(),
                "{algorithm}"
            );
            // Newlines written as `\n`, as single-line secret stores hold them.
            let escaped = fixture(name, "private_pem").replace('\n', "\\n");
            let from_escaped = KeySet::from_config(algorithm, &escaped, "").unwrap();
            assert_eq!(from_jwk.signing_kid(), from_escaped.signing_kid());
        }
    }

    #[test]
    fn the_jwks_entry_is_the_public_jwk_with_its_thumbprint() {
        for algorithm in ALL {
            let keys = keys(algorithm);
            let public: Value = fixtures()[fixture_name(algorithm)]["public_jwk"].clone();
            let (kid, jwk) = &keys.public_jwks()[0];
            let published: Value = serde_json::from_str(&jwk.to_json(kid)).unwrap();
            for member in ["kty", "crv", "x", "y", "n", "e"] {
                assert_eq!(
                    published.get(member),
                    public.get(member),
                    "{algorithm} {member}"
                );
            }
            assert_eq!(published["alg"], algorithm.as_str());
            assert_eq!(published["use"], "sig");
            assert!(published.get("d").is_none());
            assert_eq!(*kid, keys.signing_kid());
        }
    }

    #[test]
    fn the_ed25519_thumbprint_is_unchanged() {
        // The kid of an EdDSA key must stay what jwt-compact computed before ES256/RS256.
        use jwt_compact::jwk::JsonWebKey;
        use sha2::Sha256;
        let keys = KeySet::from_config(
            Algorithm::EdDSA,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "",
        )
        .unwrap();
        let Some(PublicKey::Ed25519(public)) = keys.verifying_key(keys.signing_kid()) else {
            panic!("an Ed25519 key");
        };
        let expected = URL_SAFE_NO_PAD.encode(JsonWebKey::from(public).thumbprint::<Sha256>());
        assert_eq!(keys.signing_kid(), expected);
    }

    /// A token whose header names `claimed` under the kid of a key of another algorithm.
    fn token_claiming(claimed: &str, keys: &KeySet, signature: &[u8]) -> String {
        let header = json!({"alg": claimed, "kid": keys.signing_kid(), "typ": "JWT"});
        let mut payload = serde_json::to_value(claims()).unwrap();
        payload["exp"] = json!(NOW + 900);
        payload["iat"] = json!(NOW);
        assemble(&format!("{}.{}", b64(&header), b64(&payload)), signature)
    }

    #[test]
    fn every_pair_of_header_alg_and_key_alg_that_differ_is_refused_before_crypto() {
        for key_algorithm in ALL {
            let keys = keys(key_algorithm);
            let expected_len = keys
                .verifying_key(keys.signing_kid())
                .unwrap()
                .signature_len();
            for claimed in ALL.into_iter().filter(|other| *other != key_algorithm) {
                // A signature of exactly the length the key expects, so only the algorithm
                // check can refuse it; and one by a real key of the claimed algorithm.
                let sized = token_claiming(claimed.as_str(), &keys, &vec![7; expected_len]);
                assert_eq!(
                    inspect(&keys, &sized).err(),
                    Some(TokenError::AlgorithmMismatch),
                    "{claimed} token under a {key_algorithm} key"
                );
                let other = self::keys(claimed);
                let input = {
                    let token = token_claiming(claimed.as_str(), &keys, &[]);
                    token.trim_end_matches('.').to_owned()
                };
                let signed = assemble(&input, &other.signing_key().sign(input.as_bytes()).unwrap());
                assert_eq!(
                    verify(&keys, &settings(), &signed, NOW),
                    Err(TokenError::AlgorithmMismatch),
                    "{claimed} signature under a {key_algorithm} kid"
                );
            }
            for claimed in [
                "none", "HS256", "PS256", "ES384", "RS512", "eddsa", "Ed25519",
            ] {
                let token = token_claiming(claimed, &keys, &vec![7; expected_len]);
                assert_eq!(
                    verify(&keys, &settings(), &token, NOW),
                    Err(TokenError::UnsupportedAlgorithm),
                    "{claimed} under a {key_algorithm} key"
                );
            }
        }
    }

    #[test]
    fn hs256_keyed_with_an_rsa_or_ec_public_key_is_refused() {
        use jwt_compact::alg::{Hs256, Hs256Key};
        for algorithm in [Algorithm::ES256, Algorithm::RS256] {
            let keys = keys(algorithm);
            let name = fixture_name(algorithm);
            for secret in [fixture(name, "public_pem"), fixture(name, "public_jwk")] {
                let header = Header::empty().with_key_id(keys.signing_kid().to_owned());
                let mut full = Claims::new(claims());
                full.expiration = Some(at(NOW + 900));
                let token = Hs256
                    .token(&header, &full, &Hs256Key::new(secret.as_bytes()))
                    .unwrap();
                assert_eq!(
                    verify(&keys, &settings(), &token, NOW),
                    Err(TokenError::UnsupportedAlgorithm)
                );
            }
        }
    }

    #[test]
    fn tampered_tokens_fail_for_every_algorithm() {
        for algorithm in ALL {
            let keys = keys(algorithm);
            let token = sign(&keys, &settings(), claims(), NOW).unwrap();
            let (input, signature) = token.rsplit_once('.').unwrap();
            let (header, _) = input.split_once('.').unwrap();
            let mut forged = serde_json::to_value(claims()).unwrap();
            forged["roles"] = json!(["admin"]);
            forged["exp"] = json!(NOW + 900);
            forged["iat"] = json!(NOW);
            let tampered = format!("{header}.{}.{signature}", b64(&forged));
            assert_eq!(
                verify(&keys, &settings(), &tampered, NOW),
                Err(TokenError::BadSignature),
                "{algorithm}"
            );
            // A signature by another key of the same algorithm under our kid.
            let other = KeySet::from_config(
                algorithm,
                &match algorithm {
                    Algorithm::EdDSA => "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8".to_owned(),
                    Algorithm::ES256 => fixture("es256_other", "private_jwk"),
                    Algorithm::RS256 => fixture("rs256_other", "private_jwk"),
                },
                "",
            )
            .unwrap();
            let foreign = other.signing_key().sign(input.as_bytes()).unwrap();
            assert_eq!(
                verify(&keys, &settings(), &assemble(input, &foreign), NOW),
                Err(TokenError::BadSignature),
                "{algorithm}"
            );
        }
    }

    #[test]
    fn the_signing_key_must_be_of_jwt_algorithm() {
        for key_algorithm in ALL {
            let text = fixture(fixture_name(key_algorithm), "private_jwk");
            for configured in ALL.into_iter().filter(|other| *other != key_algorithm) {
                let error = KeySet::from_config(configured, &text, "").unwrap_err();
                assert_eq!(
                    error,
                    KeyError::WrongAlgorithm {
                        setting: "JWT_SIGNING_KEY",
                        key: key_algorithm,
                        expected: configured,
                    }
                );
            }
        }
        // The legacy base64 seed is an Ed25519 key, whatever JWT_ALGORITHM says.
        assert!(matches!(
            KeySet::from_config(
                Algorithm::ES256,
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
                ""
            ),
            Err(KeyError::WrongAlgorithm { .. })
        ));
    }

    #[test]
    fn bad_keys_are_configuration_errors_that_name_no_secret() {
        let es = |form: &str| fixture("es256", form);
        let rs = |form: &str| fixture("rs256", form);
        let cases: Vec<(Algorithm, String, String, KeyError)> = vec![
            (
                Algorithm::ES256,
                es("public_jwk"),
                String::new(),
                KeyError::NotPrivate("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::RS256,
                rs("public_pem"),
                String::new(),
                KeyError::NotPrivate("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::ES256,
                es("private_jwk"),
                rs("private_jwk"),
                KeyError::NotPublic("JWT_VERIFY_KEYS"),
            ),
            (
                Algorithm::ES256,
                es("private_jwk"),
                rs("private_pem"),
                KeyError::NotPublic("JWT_VERIFY_KEYS"),
            ),
            (
                Algorithm::RS256,
                fixture("rsa1024", "private_jwk"),
                String::new(),
                KeyError::RsaTooShort {
                    setting: "JWT_SIGNING_KEY",
                    bits: 1024,
                },
            ),
            (
                Algorithm::RS256,
                rs("private_pem"),
                fixture("rsa1024", "public_pem"),
                KeyError::RsaTooShort {
                    setting: "JWT_VERIFY_KEYS",
                    bits: 1024,
                },
            ),
            (
                Algorithm::ES256,
                fixture("p384", "private_jwk"),
                String::new(),
                KeyError::Unsupported("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::ES256,
                fixture("p384", "private_pem"),
                String::new(),
                KeyError::Malformed("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::ES256,
                es("private_jwk"),
                fixture("p384", "public_jwk"),
                KeyError::Unsupported("JWT_VERIFY_KEYS"),
            ),
            (
                Algorithm::ES256,
                r#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","d":"AAAA"}"#.into(),
                String::new(),
                KeyError::Malformed("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::ES256,
                "{not json".into(),
                String::new(),
                KeyError::Malformed("JWT_SIGNING_KEY"),
            ),
            (
                Algorithm::ES256,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
                String::new(),
                KeyError::Malformed("JWT_SIGNING_KEY"),
            ),
        ];
        for (algorithm, signing, verify_keys, expected) in cases {
            let error = KeySet::from_config(algorithm, &signing, &verify_keys).unwrap_err();
            assert_eq!(error, expected, "{signing} / {verify_keys}");
            let message = error.to_string();
            for secret in [&signing, &verify_keys] {
                let value: Value = serde_json::from_str(secret).unwrap_or(Value::Null);
                for member in ["d", "p", "q", "x", "n"] {
                    if let Some(text) = value.get(member).and_then(Value::as_str) {
                        assert!(!message.contains(text), "{message}");
                    }
                }
            }
            assert!(!message.contains("BEGIN"), "{message}");
        }
    }

    #[test]
    fn a_jwk_naming_another_alg_or_use_is_refused() {
        let mut jwk: Value = fixtures()["es256"]["private_jwk"].clone();
        jwk["alg"] = json!("RS256");
        assert_eq!(
            KeySet::from_config(Algorithm::ES256, &jwk.to_string(), "").unwrap_err(),
            KeyError::Unsupported("JWT_SIGNING_KEY")
        );
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("enc");
        assert_eq!(
            KeySet::from_config(Algorithm::ES256, &jwk.to_string(), "").unwrap_err(),
            KeyError::Unsupported("JWT_SIGNING_KEY")
        );
        // A JWK whose public half is not its private key's.
        let mut mismatched: Value = fixtures()["es256"]["private_jwk"].clone();
        mismatched["x"] = fixtures()["es256_other"]["public_jwk"]["x"].clone();
        mismatched["y"] = fixtures()["es256_other"]["public_jwk"]["y"].clone();
        assert_eq!(
            KeySet::from_config(Algorithm::ES256, &mismatched.to_string(), "").unwrap_err(),
            KeyError::Malformed("JWT_SIGNING_KEY")
        );
    }

    #[test]
    fn rotation_across_algorithms_verifies_old_tokens_and_publishes_both() {
        // EdDSA to ES256: the new key signs, the old one stays for verification.
        let old = keys(Algorithm::EdDSA);
        let old_token = sign(&old, &settings(), claims(), NOW).unwrap();
        let old_jwks = json!({"keys": old.public_jwks().iter().map(|(kid, jwk)| {
            serde_json::from_str::<Value>(&jwk.to_json(kid)).unwrap()
        }).collect::<Vec<_>>()});
        for verify_keys in [
            old_jwks.to_string(),
            old_jwks["keys"].to_string(),
            old_jwks["keys"][0].to_string(),
            fixture("ed25519", "public_pem"),
            fixture("ed25519", "public_jwk"),
        ] {
            let new = KeySet::from_config(
                Algorithm::ES256,
                &fixture("es256", "private_pem"),
                &verify_keys,
            )
            .unwrap();
            assert_eq!(new.algorithm(), Algorithm::ES256);
            assert!(
                verify(&new, &settings(), &old_token, NOW).is_ok(),
                "{verify_keys}"
            );
            let new_token = sign(&new, &settings(), claims(), NOW).unwrap();
            assert!(verify(&new, &settings(), &new_token, NOW).is_ok());
            let published: Vec<(String, Algorithm)> = new
                .public_jwks()
                .into_iter()
                .map(|(kid, jwk)| (kid.to_owned(), jwk.alg))
                .collect();
            assert_eq!(
                published,
                vec![
                    (new.signing_kid().to_owned(), Algorithm::ES256),
                    (old.signing_kid().to_owned(), Algorithm::EdDSA),
                ]
            );
        }
        // Several RSA and EC keys at once, as PEM blocks one after the other.
        let pems = format!(
            "{}{}{}",
            fixture("rs256_other", "public_pem"),
            fixture("es256_other", "public_pem"),
            fixture("rs256", "public_pem"),
        );
        let set =
            KeySet::from_config(Algorithm::RS256, &fixture("rs256", "private_jwk"), &pems).unwrap();
        assert_eq!(set.public_jwks().len(), 3, "the signing key is listed once");
    }
}
