//! Usernames and email addresses: the rules for accepting them and their canonical forms.
//!
//! Usernames are public handles of 3–42 ASCII letters, digits and underscores, stored
//! lower-case so `Alice` and `alice` are one account. Email addresses are trimmed and stored
//! lower-case so uniqueness is case-insensitive; the checks are deliberately modest (one `@`,
//! a dotted domain, no spaces or control characters) because only a delivered message proves
//! an address works.

use crate::error::FieldError;

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

/// Validate an email address and return its canonical (trimmed, lower-case) form.
pub fn normalize_email(raw: &str) -> Result<String, FieldError> {
    let invalid = || FieldError::new("email", "is not a valid email address");
    let email = raw.trim();
    if email.is_empty() || email.len() > EMAIL_MAX {
        return Err(invalid());
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';'))
    {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX || local.contains('@') {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels
            .iter()
            .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        return Err(invalid());
    }
    Ok(email.to_lowercase())
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
        assert_eq!(normalize_email("Jörg@Bücher.de").unwrap(), "jörg@bücher.de");
    }

    #[test]
    fn emails_are_masked_for_logs() {
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert!(!mask_email("alice@example.com").contains("alice"));
    }
}
