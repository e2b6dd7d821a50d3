//! Interop with Rust's `jsonwebtoken` crate, the library Rust apps verify our tokens with: per
//! algorithm, a token signed by the service's own signing code verifies against the service's
//! own JWKS output (`/.well-known/jwks.json`'s body), checking `iss`, `aud` and `exp`; tampered,
//! expired and misaddressed tokens fail. Native only: `jsonwebtoken` is a dev-dependency and
//! never enters the Worker. (The Miniflare suite `algorithms.test.mjs` does the same with jose
//! and PyJWT against the running Worker.)

use edge_auth::domain::token::{sign, AccessClaims, Algorithm, KeySet, TokenSettings};
use edge_auth::routes::views::Jwks;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

const ISSUER: &str = "https://auth.example";
const AUDIENCE: &str = "example-app";

fn fixture(name: &str) -> String {
    let keys: Value = serde_json::from_str(include_str!("fixtures/test-keys.json")).unwrap();
    keys[name]["private_jwk"].to_string()
}

fn key_set(algorithm: Algorithm) -> KeySet {
    let text = match algorithm {
        Algorithm::EdDSA => fixture("ed25519"),
        Algorithm::ES256 => fixture("es256"),
        Algorithm::RS256 => fixture("rs256"),
    };
    // An old key of another algorithm stays published, as during a migration.
    let previous = serde_json::json!([serde_json::from_str::<Value>(&fixture("es256_other"))
        .unwrap()
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| name.as_str() != "d")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect::<serde_json::Map<_, _>>()]);
    KeySet::from_config(algorithm, &text, &previous.to_string()).unwrap()
}

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ttl_seconds: 900,
        leeway_seconds: 30,
    }
}

fn claims() -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: "8b0f4a4e-2f1c-4a77-9a61-0f4d1c2b3a40".into(),
        jti: "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b".into(),
        sid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
        roles: vec!["user".into()],
        email_verified: true,
        amr: vec!["pwd".into()],
        aal: "aal1".into(),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jwt_algorithm(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
    }
}

/// Verify as an app does: the JWKS document, the key by the header's kid, pinned algorithm.
fn app_verify(jwks_body: &str, token: &str, audience: &str) -> Result<Value, ErrorKind> {
    let jwks: JwkSet = serde_json::from_str(jwks_body).expect("the JWKS parses");
    let header = decode_header(token).map_err(|error| error.into_kind())?;
    let kid = header.kid.expect("a kid");
    let jwk = jwks.find(&kid).expect("the kid is published");
    let key = DecodingKey::from_jwk(jwk).map_err(|error| error.into_kind())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|error| error.into_kind())
}

fn tampered(token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = serde_json::json!(["admin"]);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[test]
fn jsonwebtoken_verifies_every_algorithm_against_our_jwks() {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let keys = key_set(algorithm);
        let jwks = serde_json::to_string(&Jwks::new(&keys)).unwrap();
        let token = sign(&keys, &settings(), claims(), now()).unwrap();
        assert_eq!(decode_header(&token).unwrap().alg, jwt_algorithm(algorithm));

        let verified = app_verify(&jwks, &token, AUDIENCE).unwrap_or_else(|error| {
            panic!("{algorithm}: {error:?}");
        });
        assert_eq!(verified["sub"], claims().sub);

        assert_eq!(
            app_verify(&jwks, &tampered(&token), AUDIENCE).unwrap_err(),
            ErrorKind::InvalidSignature,
            "{algorithm}"
        );
        let expired = sign(&keys, &settings(), claims(), now() - 2_000).unwrap();
        assert_eq!(
            app_verify(&jwks, &expired, AUDIENCE).unwrap_err(),
            ErrorKind::ExpiredSignature,
            "{algorithm}"
        );
        assert_eq!(
            app_verify(&jwks, &token, "another-app").unwrap_err(),
            ErrorKind::InvalidAudience,
            "{algorithm}"
        );
    }
}
