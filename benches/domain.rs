//! Native micro-benchmarks of the domain's hot spots: argon2id at the default parameters,
//! access-token sign and verify, refresh-token hashing. `cargo bench --bench domain` prints
//! the mean time per operation; compare with the Worker's figures from `npm run bench`.

use edge_auth::domain::password::{HashParams, PasswordHasherConfig};
use edge_auth::domain::secret::hash_opaque_token;
use edge_auth::domain::session::encode_refresh_token;
use edge_auth::domain::token::{sign, verify, AccessClaims, Algorithm, KeySet, TokenSettings};
use std::hint::black_box;
use std::time::Instant;

fn time<T>(name: &str, iterations: u32, mut operation: impl FnMut() -> T) {
    black_box(operation());
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(operation());
    }
    let per_op = start.elapsed() / iterations;
    println!("{name:<40} {per_op:>12.2?} per operation ({iterations} iterations)");
}

fn main() {
    let hasher = PasswordHasherConfig::new(HashParams::default()).expect("default parameters");
    let stored = hasher
        .hash("correct horse battery staple", &[7; 16])
        .expect("hash");
    time("argon2id hash (m=19456, t=2, p=1)", 20, || {
        hasher.hash("correct horse battery staple", &[7; 16])
    });
    time("argon2id verify (m=19456, t=2, p=1)", 20, || {
        hasher.verify("correct horse battery staple", &stored)
    });

    let keys = KeySet::from_config(
        Algorithm::EdDSA,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
        "",
    )
    .expect("key");
    let settings = TokenSettings {
        issuer: "https://auth.example".into(),
        audience: "app".into(),
        ttl_seconds: 900,
        leeway_seconds: 30,
    };
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: "8b0f4a4e-2f1c-4a77-9a61-0f4d1c2b3a40".into(),
        jti: "f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b".into(),
        sid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
        roles: vec!["user".into()],
        email_verified: true,
        amr: vec!["pwd".into()],
        aal: "aal1".into(),
    };
    let now = 1_790_000_000;
    let token = sign(&keys, &settings, claims.clone(), now).expect("sign");
    time("access token sign (EdDSA)", 2_000, || {
        sign(&keys, &settings, claims.clone(), now)
    });
    time("access token verify (EdDSA, pure Rust)", 2_000, || {
        verify(&keys, &settings, &token, now)
    });
    // ES256 and RS256 in pure Rust: what native tests and a WebCrypto failure in the Worker
    // use (the Worker's fast path is WebCrypto, timed by `npm run bench:algorithms`).
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/test-keys.json")).expect("fixtures");
    for (algorithm, name) in [(Algorithm::ES256, "es256"), (Algorithm::RS256, "rs256")] {
        let keys = KeySet::from_config(algorithm, &fixtures[name]["private_jwk"].to_string(), "")
            .expect("key");
        let token = sign(&keys, &settings, claims.clone(), now).expect("sign");
        time(
            &format!("access token sign ({algorithm}, pure Rust)"),
            200,
            || sign(&keys, &settings, claims.clone(), now),
        );
        time(
            &format!("access token verify ({algorithm}, pure Rust)"),
            200,
            || verify(&keys, &settings, &token, now),
        );
    }
    let refresh = encode_refresh_token("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", &[9; 32]);
    time("refresh token digest (SHA-256)", 100_000, || {
        hash_opaque_token(&refresh)
    });
}
