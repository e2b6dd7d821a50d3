//! Second factors around the TOTP and recovery-code primitives (`totp`, `recovery`): the
//! level a session reached (NIST SP 800-63B's AAL, the `amr` values of RFC 8176), whether a
//! sensitive operation may go ahead (step-up), the one-time ticket between the password and
//! the second factor, and sealing a TOTP secret at rest.
//!
//! `amr` values (RFC 8176 §2): `pwd` for a password, `otp` for a TOTP code *and* for a
//! recovery code (both are one-time passwords in the RFC's sense; the audit log says which
//! one was used), and `fed` for a sign-in through a provider, for which the registry has no
//! value (a documented local extension). A session that proved a second factor is `aal2`.
//!
//! Sealing: AES-256-GCM under a key derived by HKDF-SHA256 from `IDENTIFIER_DIGEST_KEY`
//! (info `edge-auth totp secret v1`), a random 96-bit nonce per seal, stored as
//! `v1.<nonce>.<ciphertext>` in base64url. A copy of the database alone does not hand out
//! every account's second factor; the key never is in the database.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The `amr` value of a password.
pub const AMR_PASSWORD: &str = "pwd";
/// The `amr` value of a one-time password: a TOTP code or a recovery code.
pub const AMR_OTP: &str = "otp";
/// The `amr` value of a provider sign-in (not in RFC 8176's registry, which has none).
pub const AMR_FEDERATED: &str = "fed";
/// RFC 8176 `hwk`: proof of possession of a hardware-secured key (a passkey).
pub const AMR_HARDWARE_KEY: &str = "hwk";

/// The factors a sign-in may be finished with, as `mfa_required` lists them.
pub const FACTOR_TOTP: &str = "totp";
/// The name of the passkey second factor (in `factors` and the metrics).
pub const FACTOR_PASSKEY: &str = "passkey";

/// Wrong codes one `mfa_token` absorbs; the last one spends it.
pub const MAX_TICKET_ATTEMPTS: u32 = 5;
/// How long an `mfa_token` lives, in seconds.
pub const TICKET_TTL_SECONDS: i64 = 300;

/// Authenticator assurance level (NIST SP 800-63B §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aal {
    /// One factor.
    #[default]
    Aal1,
    /// Two factors.
    Aal2,
}

impl Aal {
    /// The stored and claimed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }

    /// The level a stored name means; anything unknown is the lower one.
    pub fn parse(text: &str) -> Self {
        if text == "aal2" {
            Aal::Aal2
        } else {
            Aal::Aal1
        }
    }
}

/// What a session proved: its level, its methods and when it last proved a second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionLevel {
    pub aal: Aal,
    pub amr: Vec<String>,
    /// When the session last proved a second factor.
    pub aal2_at: Option<i64>,
}

impl SessionLevel {
    /// A session that signed in with one factor (`pwd` or `fed`).
    pub fn first_factor(method: &str) -> Self {
        SessionLevel {
            aal: Aal::Aal1,
            amr: vec![method.to_owned()],
            aal2_at: None,
        }
    }

    /// A session opened by a passkey with user verification at `now`: the key and the
    /// PIN or biometric that unlocked it are two factors, so it starts at aal2.
    pub fn passkey(now: i64) -> Self {
        SessionLevel {
            aal: Aal::Aal2,
            amr: vec![AMR_HARDWARE_KEY.to_owned()],
            aal2_at: Some(now),
        }
    }

    /// This session after proving a one-time code at `now`.
    pub fn raised(&self, now: i64) -> Self {
        self.raised_by(AMR_OTP, now)
    }

    /// This session after proving a second factor of `method` (`otp`, `hwk`) at `now`.
    pub fn raised_by(&self, method: &str, now: i64) -> Self {
        let mut amr = self.amr.clone();
        if !amr.iter().any(|known| known == method) {
            amr.push(method.to_owned());
        }
        SessionLevel {
            aal: Aal::Aal2,
            amr,
            aal2_at: Some(now),
        }
    }

    /// The `amr` array as stored (JSON text).
    pub fn amr_json(&self) -> String {
        serde_json::to_string(&self.amr).unwrap_or_else(|_| "[]".into())
    }

    /// A level read back from storage; a malformed `amr` is an empty one.
    pub fn from_stored(aal: &str, amr: Option<&str>, aal2_at: Option<i64>) -> Self {
        SessionLevel {
            aal: Aal::parse(aal),
            amr: amr
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default(),
            aal2_at,
        }
    }
}

/// Whether an operation that needs step-up may go ahead: always for an account without a
/// second factor (today's rules apply); with one, only for a session that proved it at most
/// `window` seconds ago (a clock going backwards does not count as recent).
pub fn step_up_satisfied(
    has_factor: bool,
    level: Option<&SessionLevel>,
    now: i64,
    window: i64,
) -> bool {
    if !has_factor {
        return true;
    }
    level
        .filter(|level| level.aal == Aal::Aal2)
        .and_then(|level| level.aal2_at)
        .is_some_and(|at| at <= now && now - at <= window)
}

/// What an `mfa_token` names, stored as its grant's payload: whose sign-in it finishes, how
/// the first factor was proven, and how many wrong codes it has absorbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaTicket {
    pub user_id: String,
    /// The first factor's `amr` value.
    pub amr: String,
    /// The provider of a provider sign-in (for the audit entry).
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    pub expires_at: i64,
    /// The password's new PHC hash when its parameters were outdated (a hash, never the
    /// password), stored when the second factor completes the sign-in.
    #[serde(default)]
    pub rehashed: Option<String>,
}

/// A stored second factor (the secret still sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct Factor {
    pub id: String,
    pub user_id: String,
    /// `totp`.
    pub kind: String,
    pub sealed_secret: String,
    /// `None` while the enrolment waits for its first code.
    pub confirmed_at: Option<i64>,
    pub last_used_step: Option<i64>,
    pub created_at: i64,
}

impl Factor {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

// The sealed secret stays out of logs as well.
impl std::fmt::Debug for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factor")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

/// A second factor as the user presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A code of the authenticator app.
    Totp(String),
    /// One of the recovery codes.
    RecoveryCode(String),
    /// A passkey's assertion (`PublicKeyCredential.toJSON()` of `navigator.credentials.get`)
    /// for a challenge issued to this account.
    Passkey(serde_json::Value),
}

impl Proof {
    /// The method name for the audit log and the metrics' `factor` label.
    pub fn factor(&self) -> &'static str {
        match self {
            Proof::Totp(_) => FACTOR_TOTP,
            Proof::RecoveryCode(_) => "recovery_code",
            Proof::Passkey(_) => FACTOR_PASSKEY,
        }
    }

    /// The RFC 8176 `amr` value it adds to a session: a code is `otp` (a recovery code is a
    /// one-time password too; the audit log tells them apart), a passkey `hwk`.
    pub fn amr(&self) -> &'static str {
        match self {
            Proof::Totp(_) | Proof::RecoveryCode(_) => AMR_OTP,
            Proof::Passkey(_) => AMR_HARDWARE_KEY,
        }
    }

    /// The request member it came in, for a field error.
    pub fn field(&self) -> &'static str {
        match self {
            Proof::Totp(_) => "code",
            Proof::RecoveryCode(_) => "recovery_code",
            Proof::Passkey(_) => "passkey",
        }
    }
}

/// The sealing key, derived from the identifier-digest key.
pub struct SealingKey([u8; 32]);

// Never in a log line.
impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// The HKDF `info` of the TOTP sealing key; a new version gets a new one.
const SEAL_INFO: &[u8] = b"edge-auth totp secret v1";
const SEAL_VERSION: &str = "v1";
/// The AES-GCM nonce size.
pub const NONCE_BYTES: usize = 12;

impl SealingKey {
    /// The key for `ikm` (the identifier-digest key's bytes).
    pub fn derive(ikm: &[u8]) -> Self {
        let mut okm = [0_u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8,160-byte limit, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, ikm).expand(SEAL_INFO, &mut okm);
        SealingKey(okm)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }

    /// Seal `plaintext` with a caller-supplied random nonce; `aad` binds the sealed value to
    /// its owner (the user id), so a row's secret copied to another account does not open.
    pub fn seal(&self, nonce: &[u8; NONCE_BYTES], plaintext: &[u8], aad: &[u8]) -> Option<String> {
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .ok()?;
        Some(format!(
            "{SEAL_VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(sealed)
        ))
    }

    /// Open a sealed value; `None` when it is malformed, of another version, sealed under
    /// another key or for another `aad`, or altered.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Option<Vec<u8>> {
        let mut parts = sealed.split('.');
        let (version, nonce, ciphertext) = (parts.next()?, parts.next()?, parts.next()?);
        if version != SEAL_VERSION || parts.next().is_some() {
            return None;
        }
        let nonce = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if nonce.len() != NONCE_BYTES {
            return None;
        }
        let ciphertext = URL_SAFE_NO_PAD.decode(ciphertext).ok()?;
        self.cipher()
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_owner() {
        let key = SealingKey::derive(b"0123456789abcdef0123456789abcdef");
        let sealed = key
            .seal(&[7; NONCE_BYTES], b"JBSWY3DPEHPK3PXP", b"user-1")
            .unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(key.open(&sealed, b"user-1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(key.open(&sealed, b"user-2"), None, "bound to its owner");
        let other = SealingKey::derive(b"another key of thirty-two bytes!");
        assert_eq!(other.open(&sealed, b"user-1"), None, "another key");
        // Altered, truncated, of another version, or not sealed at all.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            key.open(&String::from_utf8(altered).unwrap(), b"user-1"),
            None
        );
        assert_eq!(key.open(&sealed.replacen("v1.", "v2.", 1), b"user-1"), None);
        assert_eq!(key.open("v1.abc", b"user-1"), None);
        assert_eq!(key.open("JBSWY3DPEHPK3PXP", b"user-1"), None);
        assert_eq!(format!("{key:?}"), "SealingKey(..)");
    }

    #[test]
    fn each_seal_uses_its_nonce() {
        let key = SealingKey::derive(b"0123456789abcdef0123456789abcdef");
        let one = key.seal(&[1; NONCE_BYTES], b"secret", b"u").unwrap();
        let two = key.seal(&[2; NONCE_BYTES], b"secret", b"u").unwrap();
        assert_ne!(one, two);
        assert_eq!(key.open(&two, b"u").unwrap(), b"secret");
    }

    #[test]
    fn the_key_is_hkdf_sha256_of_the_digest_key() {
        // RFC 5869 test case 3 (no salt, no info) checks the construction; ours differs only
        // by `info`, so derive that one by hand from the same primitive.
        let ikm = [0x0b_u8; 22];
        let mut expected = [0_u8; 32];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(b"edge-auth totp secret v1", &mut expected)
            .unwrap();
        assert_eq!(SealingKey::derive(&ikm).0, expected);
        let mut rfc = [0_u8; 42];
        Hkdf::<Sha256>::new(None, &ikm)
            .expand(&[], &mut rfc)
            .unwrap();
        assert_eq!(
            crate::domain::secret::to_hex(&rfc),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d\
             9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn raising_a_session_adds_otp_once_and_stamps_the_time() {
        let password = SessionLevel::first_factor(AMR_PASSWORD);
        assert_eq!(password.aal, Aal::Aal1);
        let raised = password.raised(1_000);
        assert_eq!(raised.amr, ["pwd", "otp"]);
        assert_eq!(raised.aal, Aal::Aal2);
        assert_eq!(raised.aal2_at, Some(1_000));
        let again = raised.raised(2_000);
        assert_eq!(again.amr, ["pwd", "otp"]);
        assert_eq!(again.aal2_at, Some(2_000));
        let stored = SessionLevel::from_stored("aal2", Some(&again.amr_json()), Some(2_000));
        assert_eq!(stored, again);
        assert_eq!(
            SessionLevel::from_stored("x", Some("not json"), None)
                .amr
                .len(),
            0
        );
    }

    #[test]
    fn step_up_needs_a_recent_second_factor_only_with_a_factor() {
        let aal1 = SessionLevel::first_factor(AMR_PASSWORD);
        let aal2 = aal1.raised(1_000);
        assert!(step_up_satisfied(false, None, 5_000, 600));
        assert!(step_up_satisfied(false, Some(&aal1), 5_000, 600));
        assert!(!step_up_satisfied(true, None, 1_000, 600));
        assert!(!step_up_satisfied(true, Some(&aal1), 1_000, 600));
        assert!(step_up_satisfied(true, Some(&aal2), 1_600, 600));
        assert!(!step_up_satisfied(true, Some(&aal2), 1_601, 600));
        assert!(
            !step_up_satisfied(true, Some(&aal2), 999, 600),
            "from the future"
        );
    }

    #[test]
    fn a_ticket_round_trips_through_its_payload() {
        let ticket = MfaTicket {
            user_id: "u".into(),
            amr: AMR_PASSWORD.into(),
            provider: None,
            attempts: 2,
            expires_at: 300,
            rehashed: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        };
        let text = serde_json::to_string(&ticket).unwrap();
        assert_eq!(serde_json::from_str::<MfaTicket>(&text).unwrap(), ticket);
        assert_eq!(Proof::Totp("1".into()).factor(), "totp");
        assert_eq!(Proof::RecoveryCode("1".into()).factor(), "recovery_code");
    }
}
