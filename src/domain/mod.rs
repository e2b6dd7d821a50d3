//! Pure domain logic: passwords, tokens, input validation, opaque secrets, access rules,
//! bans, pagination, the audit log's vocabulary, the service metrics, and the second
//! factors (TOTP, recovery codes, passkeys).
//!
//! Nothing here imports `worker`; time, ids and randomness come in as arguments, so every
//! rule is unit-tested natively with `cargo test`.

pub mod access;
pub mod audit;
pub mod ban;
pub mod email;
pub mod hibp;
pub mod identity;
pub mod input;
pub mod keys;
pub mod lockout;
pub mod metrics;
pub mod mfa;
pub mod oauth;
pub mod one_time;
pub mod passkey;
pub mod password;
pub mod qr;
pub mod query;
pub mod rate_limit;
pub mod recovery;
pub mod secret;
pub mod session;
pub mod smtp;
pub mod time;
pub mod token;
pub mod totp;
pub mod ttl_cache;
pub mod user;
pub mod webauthn;
