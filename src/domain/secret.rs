//! Opaque secrets (refresh tokens): encoding, hashing for storage, constant-time comparison.
//!
//! A refresh token is 256 bits from the CSPRNG, sent to the client base64url-encoded and
//! stored only as its SHA-256 digest, so a read of the database yields nothing usable. A
//! plain digest (no salt, no slow hash) is right here: the input already has 256 bits of
//! entropy, and lookups must be by exact digest.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of entropy in an opaque token.
pub const OPAQUE_TOKEN_BYTES: usize = 32;

/// Encode caller-supplied random bytes as an opaque token string.
pub fn encode_opaque_token(random: &[u8; OPAQUE_TOKEN_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// Whether a string could be a token we issued (43 base64url characters), checked before
/// any lookup so garbage costs nothing.
pub fn is_well_formed_opaque_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The storage form of a token: lower-case hex SHA-256.
pub fn hash_opaque_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// A key for [`keyed_digest`]: at least this many bytes.
pub const DIGEST_KEY_MIN_BYTES: usize = 32;

/// The name a value is counted or stored under where its owner must not be readable (rate-
/// limit keys, login-failure counters): lower-case hex HMAC-SHA-256 under a secret key. A
/// plain digest of a username, an address or an IP could be reversed by hashing guesses; a
/// keyed one cannot without the key.
pub fn keyed_digest(key: &[u8], value: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(value.as_bytes());
    to_hex(&mac.finalize().into_bytes())
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

/// Lower-case hex of some bytes.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Compare two secrets without leaking, through timing, where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_digests_match_rfc_4231_and_depend_on_the_key() {
        // RFC 4231, test case 2.
        assert_eq!(
            keyed_digest(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = [7_u8; DIGEST_KEY_MIN_BYTES];
        let other = [8_u8; DIGEST_KEY_MIN_BYTES];
        assert_ne!(keyed_digest(&key, "alice"), keyed_digest(&other, "alice"));
        assert_ne!(keyed_digest(&key, "alice"), sha256_hex(b"alice"));
        assert_eq!(keyed_digest(&key, "alice").len(), 64);
    }

    #[test]
    fn tokens_are_43_url_safe_characters() {
        let token = encode_opaque_token(&[0xff; 32]);
        assert_eq!(token.len(), 43);
        assert!(is_well_formed_opaque_token(&token));
        assert!(!token.contains('+') && !token.contains('/') && !token.contains('='));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed_opaque_token(""));
        assert!(!is_well_formed_opaque_token(&"a".repeat(44)));
        assert!(!is_well_formed_opaque_token(&format!(
            "{}=",
            "a".repeat(42)
        )));
        assert!(!is_well_formed_opaque_token(&format!(
            "{}é",
            "a".repeat(41)
        )));
    }

    #[test]
    fn hash_is_the_sha256_hex_digest() {
        // SHA-256("abc"), from FIPS 180-2.
        assert_eq!(
            hash_opaque_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn distinct_tokens_hash_differently() {
        let a = encode_opaque_token(&[1; 32]);
        let b = encode_opaque_token(&[2; 32]);
        assert_ne!(hash_opaque_token(&a), hash_opaque_token(&b));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
