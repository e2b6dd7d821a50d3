//! Password policy and argon2id hashing.
//!
//! Policy follows NIST SP 800-63B: a length range (8–128 characters by default), no
//! composition rules, and a refusal of the most common passwords and of the account's own
//! name. Hashes are argon2id PHC strings; the parameters are settings (OWASP's minimum,
//! m=19456 KiB, t=2, p=1, by default) and a hash made with other parameters is flagged for
//! rehash on the next successful login.

use crate::error::FieldError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

/// Hard cap on the bytes handed to argon2, whatever the policy says: hashing cost grows with
/// input length, so an unbounded password is a denial-of-service lever.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The 10,000 most common passwords, lower-case; `common_passwords.txt` names its source.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// The stored "hash" of an account that has no password (created through a sign-in
/// provider) until one is set, by a reset or a change. A PHC string always starts with `$`,
/// so no password can ever produce it, and [`PasswordHasherConfig::verify`] answers a
/// mismatch for it (after the cost of one hash, so timing does not tell such an account
/// apart). A reset replaces it like any other hash.
pub const NO_PASSWORD: &str = "!none";

/// How many entries the embedded list has.
pub const COMMON_PASSWORD_COUNT: usize = 10_000;

/// Length limits, in Unicode characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Check a new password for the named field against the policy and the account's identity.
    pub fn check(
        &self,
        field: &str,
        password: &str,
        username: &str,
        email: Option<&str>,
    ) -> Result<(), FieldError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(FieldError::new(
                field,
                format!(
                    "is too long: at most {} characters and {MAX_PASSWORD_BYTES} bytes",
                    self.max_chars
                ),
            ));
        }
        let length = password.chars().count();
        if length < self.min_chars || length > self.max_chars {
            return Err(FieldError::new(
                field,
                format!(
                    "must be {} to {} characters long",
                    self.min_chars, self.max_chars
                ),
            ));
        }
        let lowered = password.to_lowercase();
        if is_common(&lowered) {
            return Err(FieldError::new(
                field,
                "is too common; choose a less predictable password",
            ));
        }
        let equals_identity = lowered == username.to_lowercase()
            || email.is_some_and(|email| {
                lowered == email.to_lowercase()
                    || email
                        .split('@')
                        .next()
                        .is_some_and(|local| local.len() >= 3 && lowered == local.to_lowercase())
            });
        if equals_identity {
            return Err(FieldError::new(
                field,
                "must not be the same as your username or email",
            ));
        }
        Ok(())
    }
}

/// The entries of a list file: everything after the header, which ends at the first blank
/// line (entries may start with `#`, so comments cannot be told apart line by line).
fn list_entries(file: &str) -> impl Iterator<Item = &str> {
    file.lines()
        .skip_while(|line| !line.trim().is_empty())
        .filter(|line| !line.is_empty())
}

/// The list, sorted once per isolate, for binary search: O(log n) per check, no allocation.
fn common_passwords() -> &'static [&'static str] {
    static SORTED: OnceLock<Vec<&'static str>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut entries: Vec<&'static str> = list_entries(COMMON_PASSWORDS).collect();
        entries.sort_unstable();
        entries.dedup();
        entries
    })
}

/// Whether a lower-cased password is on the common-passwords list.
pub fn is_common(lowered: &str) -> bool {
    common_passwords().binary_search(&lowered).is_ok()
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    /// OWASP's minimum recommendation for argon2id.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why a hash could not be made or checked. Never shown to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    InvalidParams(String),
    InvalidStoredHash,
    Hashing(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Mismatch,
    Match,
    /// Correct, but hashed with other parameters than the current ones: store a new hash.
    MatchNeedsRehash,
}

/// Hashes and verifies passwords with fixed parameters.
#[derive(Debug, Clone)]
pub struct PasswordHasherConfig {
    params: HashParams,
}

impl PasswordHasherConfig {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        Self::argon2_params(params)?;
        Ok(Self { params })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    fn argon2_params(params: HashParams) -> Result<Params, HashError> {
        Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|error| HashError::InvalidParams(error.to_string()))
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        Ok(Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Self::argon2_params(self.params)?,
        ))
    }

    /// Hash a password into a PHC string with a caller-supplied 16-byte random salt.
    pub fn hash(&self, password: &str, salt: &[u8; 16]) -> Result<String, HashError> {
        let salt =
            SaltString::encode_b64(salt).map_err(|error| HashError::Hashing(error.to_string()))?;
        self.argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| HashError::Hashing(error.to_string()))
    }

    /// Check a password against a stored PHC string (in constant time, inside argon2).
    pub fn verify(&self, password: &str, stored: &str) -> Result<Verification, HashError> {
        if stored == NO_PASSWORD {
            self.burn(password);
            return Ok(Verification::Mismatch);
        }
        let parsed = PasswordHash::new(stored).map_err(|_| HashError::InvalidStoredHash)?;
        // Verify with the parameters recorded in the hash, not the current ones.
        let verified = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        if !verified {
            return Ok(Verification::Mismatch);
        }
        if self.is_current(&parsed) {
            Ok(Verification::Match)
        } else {
            Ok(Verification::MatchNeedsRehash)
        }
    }

    /// Spend the cost of one hash without a stored hash to compare with, so a login for an
    /// unknown account takes as long as one for a known account.
    pub fn burn(&self, password: &str) {
        let _ = self.hash(password, &[0x5a; 16]);
    }

    fn is_current(&self, parsed: &PasswordHash<'_>) -> bool {
        let Ok(recorded) = Params::try_from(parsed) else {
            return false;
        };
        parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(Version::V0x13.into())
            && recorded.m_cost() == self.params.memory_kib
            && recorded.t_cost() == self.params.iterations
            && recorded.p_cost() == self.params.parallelism
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters keep the suite fast; the defaults are tested once below.
    fn fast() -> PasswordHasherConfig {
        PasswordHasherConfig::new(HashParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn policy_enforces_length_in_characters() {
        let policy = PasswordPolicy::default();
        assert!(policy.check("password", "kT9#mvq2", "alice", None).is_ok());
        assert!(policy.check("password", "kT9#mvq", "alice", None).is_err());
        // Eight characters of four bytes each are still eight characters.
        assert!(policy
            .check("password", "🔐🔑🗝🔒🔓🛡🧱🚪", "alice", None)
            .is_ok());
        assert!(policy
            .check("password", &"x".repeat(128), "alice", None)
            .is_ok());
        assert!(policy
            .check("password", &"x".repeat(129), "alice", None)
            .is_err());
    }

    #[test]
    fn policy_caps_bytes_before_anything_else() {
        let policy = PasswordPolicy {
            min_chars: 8,
            max_chars: 10_000,
        };
        let error = policy
            .check(
                "password",
                &"x".repeat(MAX_PASSWORD_BYTES + 1),
                "alice",
                None,
            )
            .unwrap_err();
        assert_eq!(error.field, "password");
    }

    #[test]
    fn policy_rejects_common_passwords_case_insensitively() {
        let policy = PasswordPolicy::default();
        for common in [
            "password",
            "Password1",
            "12345678",
            "qwertyuiop",
            "iloveyou",
        ] {
            let error = policy
                .check("new_password", common, "alice", None)
                .unwrap_err();
            assert_eq!(error.field, "new_password");
            assert!(error.message.contains("common"), "{common}");
        }
    }

    #[test]
    fn the_common_list_is_the_top_ten_thousand_lower_case() {
        let entries: Vec<&str> = list_entries(COMMON_PASSWORDS).collect();
        assert_eq!(entries.len(), COMMON_PASSWORD_COUNT);
        assert_eq!(
            common_passwords().len(),
            COMMON_PASSWORD_COUNT,
            "no duplicates"
        );
        assert_eq!(entries[0], "123456", "most common first, as in the source");
        assert!(entries
            .iter()
            .all(|e| *e == e.to_lowercase() && *e == e.trim()));
        // An entry that starts with '#' is an entry, not a comment.
        assert!(is_common("#1bitch"));
    }

    #[test]
    fn policy_refuses_entries_from_deep_in_the_list() {
        let policy = PasswordPolicy::default();
        // Entries of 8+ characters past the old seed list (ranks 372 to 9,975).
        for common in ["Liverpool1", "tinkerbell", "GodLovesMe", "grenouille"] {
            let error = policy.check("password", common, "alice", None).unwrap_err();
            assert!(error.message.contains("too common"), "{common}");
        }
        assert!(!is_common("correct horse battery staple"));
        assert!(policy
            .check("password", "correct horse battery staple", "alice", None)
            .is_ok());
    }

    #[test]
    fn an_over_long_password_says_so_in_bytes() {
        let error = PasswordPolicy::default()
            .check("password", &"é".repeat(600), "alice", None)
            .unwrap_err();
        assert_eq!(
            error.message,
            "is too long: at most 128 characters and 1024 bytes"
        );
    }

    #[test]
    fn policy_rejects_the_accounts_own_names() {
        let policy = PasswordPolicy::default();
        assert!(policy
            .check("password", "Alice_Wonder", "alice_wonder", None)
            .is_err());
        assert!(policy
            .check(
                "password",
                "wonderland@example.com",
                "alice",
                Some("wonderland@example.com")
            )
            .is_err());
        assert!(policy
            .check(
                "password",
                "wonderland",
                "alice",
                Some("wonderland@example.com")
            )
            .is_err());
    }

    #[test]
    fn hash_then_verify_round_trips() {
        let hasher = fast();
        let hash = hasher.hash("correct horse", &[7; 16]).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify("correct horse", &hash).unwrap(),
            Verification::Match
        );
        assert_eq!(
            hasher.verify("correct horsE", &hash).unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn different_salts_give_different_hashes() {
        let hasher = fast();
        assert_ne!(
            hasher.hash("same", &[1; 16]).unwrap(),
            hasher.hash("same", &[2; 16]).unwrap()
        );
    }

    #[test]
    fn changed_parameters_flag_a_rehash() {
        let old = fast();
        let hash = old.hash("correct horse", &[3; 16]).unwrap();
        let new = PasswordHasherConfig::new(HashParams {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            new.verify("correct horse", &hash).unwrap(),
            Verification::MatchNeedsRehash
        );
        assert_eq!(
            new.verify("wrong horse", &hash).unwrap(),
            Verification::Mismatch
        );
    }

    #[test]
    fn garbage_stored_hash_is_an_error_not_a_match() {
        assert_eq!(
            fast().verify("x", "not-a-phc-string"),
            Err(HashError::InvalidStoredHash)
        );
    }

    #[test]
    fn an_account_without_a_password_never_verifies() {
        let hasher = fast();
        for attempt in ["", NO_PASSWORD, "!none ", "correct horse"] {
            assert_eq!(
                hasher.verify(attempt, NO_PASSWORD).unwrap(),
                Verification::Mismatch
            );
        }
        assert!(!hasher.hash(NO_PASSWORD, &[4; 16]).unwrap().eq(NO_PASSWORD));
    }

    #[test]
    fn default_parameters_are_the_owasp_minimum() {
        let hasher = PasswordHasherConfig::new(HashParams::default()).unwrap();
        let hash = hasher.hash("correct horse", &[9; 16]).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            hasher.verify("correct horse", &hash).unwrap(),
            Verification::Match
        );
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(PasswordHasherConfig::new(HashParams {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1
        })
        .is_err());
    }
}
