//! Usernames and email addresses: the rules for accepting them and their canonical forms.
//!
//! Usernames are public handles of 3–42 ASCII letters, digits and underscores, stored
//! lower-case so `Alice` and `alice` are one account. Email addresses are stored in one
//! canonical form, so two spellings of one address cannot make two accounts: trimmed,
//! Unicode NFC, the local part lower-cased, the domain in its IDNA ASCII form (UTS #46, which
//! also lower-cases and folds width: `Bücher.DE` and `xn--bcher-kva.de` are one domain). The
//! other checks are deliberately modest (one `@`, a dotted domain, no spaces, control or
//! invisible formatting characters) because only a delivered message proves an address works.

use crate::domain::ban::BanState;
use crate::error::FieldError;
use icu_normalizer::ComposingNormalizerBorrowed;
use serde::{Deserialize, Serialize};

/// An account as every layer above the store sees it, whatever the backend keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Role names, sorted.
    pub roles: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The ban, when one was set; see [`BanState`].
    pub banned_at: Option<i64>,
    pub banned_until: Option<i64>,
    pub ban_reason: Option<String>,
    /// The PHC string; empty where a lookup did not read it. Never serialized, so it does not
    /// travel to a Durable Object and back.
    #[serde(default, skip_serializing)]
    pub password_hash: String,
    /// When the session behind the access token signed in with a password; only a lookup by
    /// live session reads it.
    #[serde(default)]
    pub session_signed_in_at: Option<i64>,
    /// What the session behind the access token proved (level, methods, last second
    /// factor); only a lookup by live session reads it.
    #[serde(default)]
    pub session_level: Option<crate::domain::mfa::SessionLevel>,
    /// Whether the account has a confirmed second factor; only a lookup by live session
    /// reads it (step-up decides on it).
    #[serde(default)]
    pub mfa_enabled: bool,
}

impl User {
    /// The account's ban state at `now`.
    pub fn ban_state(&self, now: i64) -> BanState {
        BanState::at(self.banned_at, self.banned_until, now)
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 42;
/// RFC 5321's path limit.
pub const EMAIL_MAX: usize = 254;
const EMAIL_LOCAL_MAX: usize = 64;

/// Validate a username and return its canonical (lower-case) form.
pub fn normalize_username(raw: &str) -> Result<String, FieldError> {
    let length = raw.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&length) {
        return Err(FieldError::new(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters long"),
        ));
    }
    if !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(FieldError::new(
            "username",
            "may contain only letters, digits and underscores",
        ));
    }
    Ok(raw.to_ascii_lowercase())
}

/// Characters that change nothing visible but make two strings differ: zero-width spaces and
/// joiners, bidirectional overrides, the soft hyphen, the byte-order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// Unicode NFC.
fn nfc(text: &str) -> String {
    ComposingNormalizerBorrowed::new_nfc()
        .normalize(text)
        .into_owned()
}

/// Validate an email address and return its canonical form (see the module docs).
pub fn normalize_email(raw: &str) -> Result<String, FieldError> {
    let invalid = || FieldError::new("email", "is not a valid email address");
    let email = raw.trim();
    // Bounded before any normalisation work; the canonical form is checked again below.
    if email.is_empty() || email.len() > EMAIL_MAX * 4 {
        return Err(invalid());
    }
    if email.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || is_invisible_format(c)
            || matches!(c, '<' | '>' | '"' | ',' | ';')
    }) {
        return Err(invalid());
    }
    let email = nfc(email);
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    // Lower-casing can leave a string that is no longer NFC (`İ` becomes `i` + a combining
    // dot), so normalise once more.
    let local = nfc(&local.to_lowercase());
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX || local.contains('@') {
        return Err(invalid());
    }
    let domain = idna::domain_to_ascii_strict(domain).map_err(|_| invalid())?;
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        return Err(invalid());
    }
    let canonical = format!("{local}@{domain}");
    if canonical.len() > EMAIL_MAX {
        return Err(invalid());
    }
    Ok(canonical)
}

/// Whether a login identifier looks like an email (the `username` field may hold either).
pub fn looks_like_email(identifier: &str) -> bool {
    identifier.contains('@')
}

/// A masked form of an email for logs: first character of the local part and the domain.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_lower_cased() {
        assert_eq!(normalize_username("Alice_01").unwrap(), "alice_01");
    }

    #[test]
    fn username_length_bounds_are_inclusive() {
        assert!(normalize_username("abc").is_ok());
        assert!(normalize_username(&"a".repeat(42)).is_ok());
        assert!(normalize_username("ab").is_err());
        assert!(normalize_username(&"a".repeat(43)).is_err());
    }

    #[test]
    fn usernames_reject_anything_but_letters_digits_underscore() {
        for bad in [
            "al ice",
            "al-ice",
            "alice!",
            "ålice",
            "al\u{0}ice",
            "ａｌｉｃｅ",
            "al.ice",
        ] {
            let error = normalize_username(bad).unwrap_err();
            assert_eq!(error.field, "username", "{bad}");
        }
    }

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Alice.Smith+tag@Example.COM ").unwrap(),
            "alice.smith+tag@example.com"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@example",
            "alice@.example.com",
            "alice@example..com",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "a\u{0}@example.com",
            "<alice@example.com>",
            long_local.as_str(),
            long_total.as_str(),
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn internationalised_emails_are_accepted() {
        assert_eq!(
            normalize_email("Jörg@Bücher.de").unwrap(),
            "jörg@xn--bcher-kva.de"
        );
    }

    #[test]
    fn spellings_of_one_address_share_one_canonical_form() {
        // NFC: a precomposed `ü` and `u` + combining diaeresis, in the local part and the
        // domain; the domain's Unicode and A-label forms; full-width letters.
        let forms = [
            "j\u{00F6}rg@b\u{00FC}cher.de",
            "jo\u{0308}rg@bu\u{0308}cher.de",
            "J\u{00D6}RG@B\u{00DC}CHER.DE",
            "jörg@xn--bcher-kva.de",
            "jörg@XN--BCHER-KVA.de",
            "jörg@ｂüｃｈｅｒ.de",
        ];
        for form in forms {
            assert_eq!(
                normalize_email(form).unwrap(),
                "j\u{00F6}rg@xn--bcher-kva.de",
                "{form:?}"
            );
        }
    }

    #[test]
    fn invisible_characters_make_an_address_invalid() {
        for bad in [
            "al\u{200B}ice@example.com",
            "alice@exa\u{200D}mple.com",
            "\u{FEFF}alice@example.com",
            "alice\u{202E}@example.com",
            "ali\u{00AD}ce@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn domains_that_are_not_valid_idna_are_refused() {
        for bad in [
            "a@xn--zz.com",
            "a@exa_mple.com",
            "a@-example.com",
            "a@example..com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails_are_masked_for_logs() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert!(!mask_email("alice@example.com").contains("alice"));
    }
}
