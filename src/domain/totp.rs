//! Time-based one-time passwords (RFC 6238) for the authenticator-app second factor: the
//! shared secret, the `otpauth://` URI an app scans, the code for a moment, and checking a
//! code a user typed.
//!
//! The parameters are the ones every authenticator app understands and most apps ignore any
//! other value of: HMAC-SHA-1, six digits, a 30-second step. A code is accepted one step
//! early or late, to absorb clock drift and the seconds it takes to type it; an accepted step
//! is remembered by the caller and never accepted again, so a code seen over a shoulder or in
//! a log cannot be replayed. The time always comes in as an argument: `SystemTime::now()`
//! panics on wasm32, and tests need fixed moments anyway.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Bytes of a new secret: 160 bits, the HMAC-SHA-1 output size RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
/// The shortest secret accepted back from storage (RFC 4226 §4: at least 128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// Seconds per time step.
pub const PERIOD_SECONDS: u64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Steps accepted on either side of the current one.
pub const TOLERANCE_STEPS: u64 = 1;

/// A TOTP shared secret. Stored (encrypted at rest, ideally) as its base32 form, since the
/// service must recompute codes from it; it is never hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

// The secret never reaches a log line, not even through a stray `{:?}`.
impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A new secret from caller-supplied CSPRNG bytes.
    pub fn generate(random: &[u8; SECRET_BYTES]) -> Self {
        TotpSecret(random.to_vec())
    }

    /// A secret read back from its base32 form (RFC 4648, either case, padding optional).
    /// `None` for anything else, or for fewer than [`MIN_SECRET_BYTES`] bytes.
    pub fn from_base32(text: &str) -> Option<Self> {
        let bytes = base32_decode(text.trim_end_matches('='))?;
        (bytes.len() >= MIN_SECRET_BYTES).then_some(TotpSecret(bytes))
    }

    /// The RFC 4648 base32 form without padding: what authenticator apps take (Google
    /// Authenticator refuses `=`), and what the user types when they cannot scan.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }
}

/// What enrolment shows the user once: the secret for typing, the URI for apps that take a
/// link, and the same URI as a QR code.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolment {
    /// Base32, no padding.
    pub secret: String,
    pub otpauth_uri: String,
    /// A standalone SVG document.
    pub qr_svg: String,
}

// All three carry the secret; none of them reaches a log line through `{:?}`.
impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(..)")
    }
}

/// Everything enrolment shows, for a new secret from caller-supplied random bytes. `None`
/// only when issuer and account are so long that the URI no longer fits a QR code (about
/// 2,300 bytes); the service limits both far below that.
pub fn enrol(random: &[u8; SECRET_BYTES], issuer: &str, account: &str) -> Option<Enrolment> {
    let secret = TotpSecret::generate(random);
    let otpauth_uri = otpauth_uri(&secret, issuer, account);
    let title = format!("QR code to add {issuer} ({account}) to an authenticator app");
    let qr_svg = crate::domain::qr::qr_svg(&otpauth_uri, &title)?;
    Some(Enrolment {
        secret: secret.to_base32(),
        otpauth_uri,
        qr_svg,
    })
}

/// Characters left as they are in the URI: RFC 3986's unreserved set, and `@`, which is
/// legal in a path and query and which apps show badly when escaped in an email label.
/// Everything else is percent-encoded as UTF-8, so a `:`, `&`, `=`, `#`, `?` or space inside
/// the issuer or account cannot change the URI's structure.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// The Key URI (Google Authenticator's format, which every app reads):
/// `otpauth://totp/{issuer}:{account}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
/// The issuer appears both in the label (older apps read only that) and as a parameter
/// (newer apps prefer it). The format forbids a colon inside either part; one is escaped
/// here, which keeps the URI sound, but some apps then split the label oddly, so issuers and
/// account names should avoid it.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    let issuer = utf8_percent_encode(issuer, URI_COMPONENT).to_string();
    let account = utf8_percent_encode(account, URI_COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECONDS}",
        secret = secret.to_base32(),
    )
}

/// The time step a moment falls in. Moments before 1970 count as step 0: the clock the
/// Worker reads is never there, and a wrong clock must not be a panic.
pub fn time_step(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds).unwrap_or(0) / PERIOD_SECONDS
}

/// The code an app shows at a moment.
pub fn code_at(secret: &TotpSecret, unix_seconds: i64) -> String {
    code_for_step(secret, time_step(unix_seconds))
}

/// The code of one time step: HOTP (RFC 4226) with the step as the counter.
fn code_for_step(secret: &TotpSecret, step: u64) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&secret.0)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(&step.to_be_bytes());
    let digest: [u8; 20] = mac.finalize().into_bytes().into();
    // Dynamic truncation (RFC 4226 §5.3): the low nibble of the last byte picks 4 bytes;
    // offset + 3 <= 18, inside the 20-byte digest.
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// Whether user input has the shape of a code: exactly six ASCII digits. Anything else is
/// refused before any HMAC is computed; trimming or dropping spaces is the caller's choice.
pub fn is_well_formed_code(code: &str) -> bool {
    code.len() == DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

/// Check a code typed at `now`. Returns the time step it belongs to, which the caller stores
/// as the new `last_used_step`; `None` if the code is malformed, wrong, or of a step at or
/// before `last_used_step` (a replay, or an older code after a newer one was accepted).
///
/// The steps tried are the current one and [`TOLERANCE_STEPS`] on either side: a code shown
/// exactly 30 seconds ago or ahead still passes, one 60 seconds away does not. Every
/// candidate is computed and compared in constant time, so timing reveals neither how many
/// digits matched nor which step did.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: i64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if !is_well_formed_code(code) {
        return None;
    }
    let current = time_step(now);
    let first = current.saturating_sub(TOLERANCE_STEPS);
    let last = current.saturating_add(TOLERANCE_STEPS);
    let mut matched = None;
    for step in first..=last {
        let equal: bool = code_for_step(secret, step)
            .as_bytes()
            .ct_eq(code.as_bytes())
            .into();
        let fresh = last_used_step.is_none_or(|used| step > used);
        // The latest matching step wins, so the stored step moves as far forward as it can.
        if equal && fresh {
            matched = Some(step);
        }
    }
    matched
}

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32, upper case, no padding.
fn base32_encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(char::from(
                BASE32_ALPHABET[usize::from((buffer >> bits) & 0x1f)],
            ));
        }
    }
    if bits > 0 {
        text.push(char::from(
            BASE32_ALPHABET[usize::from((buffer << (5 - bits)) & 0x1f)],
        ));
    }
    text
}

/// RFC 4648 base32 without padding, either case. `None` for a character outside the
/// alphabet, a length no encoder produces, or non-zero leftover bits (so each secret has
/// exactly one text form).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    // Lengths mod 8 of unpadded base32: 1, 3 and 6 cannot occur.
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut bytes = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u16 = 0;
    let mut bits = 0;
    for character in text.bytes() {
        let value = match character.to_ascii_uppercase() {
            upper @ b'A'..=b'Z' => upper - b'A',
            digit @ b'2'..=b'7' => digit - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u16::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    if buffer & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 seed: the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::generate(b"12345678901234567890")
    }

    #[test]
    fn codes_match_rfc_6238_appendix_b_truncated_to_six_digits() {
        // (time, the 8-digit TOTP from the RFC); six digits are its last six.
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let secret = rfc_secret();
        for (time, eight_digits) in vectors {
            assert_eq!(code_at(&secret, time), eight_digits[2..], "time {time}");
        }
    }

    #[test]
    fn a_code_verifies_within_one_step_either_side_and_not_two() {
        let secret = rfc_secret();
        let issued_at = 1_111_111_111;
        let code = code_at(&secret, issued_at);
        let step = time_step(issued_at);
        assert_eq!(verify(&secret, &code, issued_at, None), Some(step));
        assert_eq!(verify(&secret, &code, issued_at + 30, None), Some(step));
        assert_eq!(verify(&secret, &code, issued_at - 30, None), Some(step));
        assert_eq!(verify(&secret, &code, issued_at + 60, None), None);
        assert_eq!(verify(&secret, &code, issued_at - 60, None), None);
    }

    #[test]
    fn window_edges_follow_step_boundaries() {
        let secret = rfc_secret();
        // The first and last second of one step.
        let start = 1_000_000_020; // a multiple of 30
        let code = code_at(&secret, start);
        assert_eq!(code, code_at(&secret, start + 29));
        assert_ne!(code, code_at(&secret, start + 30));
        // Still accepted through the end of the next step, refused from the one after.
        assert!(verify(&secret, &code, start + 59, None).is_some());
        assert!(verify(&secret, &code, start + 60, None).is_none());
        // And from the start of the previous step, not the second before it.
        assert!(verify(&secret, &code, start - 30, None).is_some());
        assert!(verify(&secret, &code, start - 31, None).is_none());
    }

    #[test]
    fn an_accepted_code_cannot_be_replayed() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(step)), None);
        assert_eq!(verify(&secret, &code, now + 30, Some(step)), None);
        // An older code is refused once a newer one was used, even inside the window.
        let previous = code_at(&secret, now - 30);
        assert_eq!(verify(&secret, &previous, now, Some(step)), None);
        // The next code is still good.
        let next = code_at(&secret, now + 30);
        assert_eq!(verify(&secret, &next, now + 30, Some(step)), Some(step + 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        let now = 59;
        let code = code_at(&secret, now);
        assert_eq!(code, "287082");
        for bad in [
            "",
            "28708",
            "2870822",
            " 287082",
            "287082 ",
            "287 082",
            "28708a",
            "２８７０８２", // full-width digits
            "+28708",
            "-28708",
        ] {
            assert_eq!(verify(&secret, bad, now, None), None, "{bad:?}");
        }
        assert!(verify(&secret, &code, now, None).is_some());
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let secret = rfc_secret();
        assert_eq!(verify(&secret, "000000", 59, None), None);
        let other = TotpSecret::generate(&[9; SECRET_BYTES]);
        assert_eq!(verify(&other, "287082", 59, None), None);
    }

    #[test]
    fn times_near_the_epoch_do_not_underflow() {
        let secret = rfc_secret();
        let code = code_at(&secret, 0);
        assert_eq!(verify(&secret, &code, 0, None), Some(0));
        assert_eq!(verify(&secret, &code, -5, None), Some(0));
        assert_eq!(time_step(i64::MIN), 0);
        assert_eq!(time_step(i64::MAX), i64::MAX as u64 / 30);
        let _ = verify(&secret, &code, i64::MAX, Some(u64::MAX));
    }

    #[test]
    fn base32_matches_rfc_4648_and_round_trips() {
        // RFC 4648 §10, padding removed.
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).unwrap(), plain.as_bytes());
            assert_eq!(
                base32_decode(&encoded.to_lowercase()).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(base32_decode("MZXW6YQ1"), None);
        assert_eq!(base32_decode("M"), None);
        // "MZ" has leftover bits: not what an encoder writes for "f" ("MY").
        assert_eq!(base32_decode("MZ"), None);
    }

    #[test]
    fn secrets_are_160_bits_as_32_base32_characters() {
        let secret = TotpSecret::generate(&[0xa5; SECRET_BYTES]);
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert!(!text.contains('='));
        assert_eq!(TotpSecret::from_base32(&text), Some(secret.clone()));
        assert_eq!(
            TotpSecret::from_base32(&text.to_lowercase()),
            Some(secret.clone())
        );
        // Too short to be a secret, or not base32 at all.
        assert_eq!(TotpSecret::from_base32("MZXW6YTB"), None);
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }

    #[test]
    fn the_uri_carries_every_parameter_and_escapes_the_label() {
        let secret = TotpSecret::generate(b"12345678901234567890");
        let uri = otpauth_uri(&secret, "ACME Co", "john.doe@email.com");
        assert_eq!(
            uri,
            "otpauth://totp/ACME%20Co:john.doe@email.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Co&algorithm=SHA1&digits=6&period=30"
        );
        let tricky = otpauth_uri(&secret, "A&B=C#", "ünï:code?x/y+z");
        assert!(tricky
            .starts_with("otpauth://totp/A%26B%3DC%23:%C3%BCn%C3%AF%3Acode%3Fx%2Fy%2Bz?secret="));
        assert!(tricky.contains("&issuer=A%26B%3DC%23&algorithm=SHA1"));
    }

    #[test]
    fn enrolment_shows_secret_uri_and_qr_code() {
        let enrolment = enrol(&[0x42; SECRET_BYTES], "Edge Auth", "ada@example.com").unwrap();
        assert_eq!(enrolment.secret.len(), 32);
        assert!(enrolment
            .otpauth_uri
            .contains(&format!("secret={}&", enrolment.secret)));
        assert!(enrolment.qr_svg.starts_with("<svg "));
        assert!(enrolment.qr_svg.contains("<title>QR code to add Edge Auth"));
        assert_eq!(format!("{enrolment:?}"), "Enrolment(..)");
        let secret = TotpSecret::from_base32(&enrolment.secret).unwrap();
        let code = code_at(&secret, 1_800_000_000);
        assert!(verify(&secret, &code, 1_800_000_000, None).is_some());
        // A label too long for any QR code is refused, not a panic.
        assert!(enrol(&[0x42; SECRET_BYTES], "Edge Auth", &"a".repeat(4000)).is_none());
    }
}
