//! Passkeys as the service keeps them: a registered credential of an account, the
//! single-use challenges of its ceremonies, the names people give them, the user handle an
//! account is known by on its authenticators, and the relying party's settings
//! (`WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS`). The ceremonies' checks
//! themselves are `domain::webauthn`'s; this module is what sits around them.

use crate::domain::oauth::allows_plain_http;
use crate::domain::secret::hash_opaque_token;
use crate::domain::webauthn::RelyingParty;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

/// How long a challenge may be answered, in seconds (the options' `timeout` is a little
/// shorter, so a browser gives up before the service would refuse).
pub const CHALLENGE_TTL_SECONDS: i64 = 300;
/// The `timeout` handed to the browser, in milliseconds.
pub const CEREMONY_TIMEOUT_MS: u32 = 240_000;
/// The longest name of a passkey, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The name a passkey gets when none is given.
pub const DEFAULT_NAME: &str = "Passkey";

/// A registered credential of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    pub id: String,
    pub user_id: String,
    /// The authenticator's credential id, base64url (unpadded).
    pub credential_id: String,
    /// The COSE_Key bytes, base64url (unpadded).
    pub public_key: String,
    /// The COSE algorithm identifier (-7, -8, -257).
    pub algorithm: i64,
    pub sign_count: i64,
    pub name: String,
    /// The authenticator model's AAGUID, in UUID form (all zeros when it says none).
    pub aaguid: String,
    pub backup_eligible: bool,
    pub backed_up: bool,
    /// Transport hints (`internal`, `hybrid`, `usb`, ...).
    pub transports: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What a challenge was issued for; one is never spent as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    Registration,
    Authentication,
}

impl ChallengePurpose {
    /// The stored name (the `purpose` column's check lists these).
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Registration => "registration",
            ChallengePurpose::Authentication => "authentication",
        }
    }
}

/// What a spent challenge was issued with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentChallenge {
    /// The account it was issued to; `None` for a passwordless sign-in's.
    pub user_id: Option<String>,
}

/// The digest a challenge is stored and looked up under (SHA-256 of its base64url form,
/// as every other one-time value of the service).
pub fn challenge_digest(challenge: &[u8]) -> String {
    hash_opaque_token(&URL_SAFE_NO_PAD.encode(challenge))
}

#[derive(Deserialize)]
struct ClientDataChallenge {
    challenge: String,
}

/// The challenge a response's `clientDataJSON` answers, to find the stored ceremony by.
/// Only a lookup key: the verification then checks the whole client data against the
/// challenge found. `None` for anything unreadable or implausibly long.
pub fn client_data_challenge(client_data_json: &[u8]) -> Option<Vec<u8>> {
    let data: ClientDataChallenge = serde_json::from_slice(client_data_json).ok()?;
    if data.challenge.is_empty() || data.challenge.len() > 128 {
        return None;
    }
    let engine = if data.challenge.ends_with('=') {
        &URL_SAFE
    } else {
        &URL_SAFE_NO_PAD
    };
    engine.decode(data.challenge).ok()
}

/// The user handle an account is known by on its authenticators: the 16 bytes of its UUID
/// (opaque, no personal data, WebAuthn §14.6.1). An id that is not a UUID (only tests make
/// those) is its own bytes.
pub fn user_handle(user_id: &str) -> Vec<u8> {
    match Uuid::parse_str(user_id) {
        Ok(uuid) => uuid.as_bytes().to_vec(),
        Err(_) => user_id.as_bytes().to_vec(),
    }
}

/// A passkey's name as given: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters; `None` gives [`DEFAULT_NAME`]. `Err` says what is wrong, for a 422.
pub fn passkey_name(name: Option<&str>) -> Result<String, &'static str> {
    let Some(name) = name else {
        return Ok(DEFAULT_NAME.to_owned());
    };
    let name = name.trim();
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("must be at most 64 characters long");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(name.to_owned())
}

/// An AAGUID in UUID form.
pub fn aaguid_text(aaguid: &[u8; 16]) -> String {
    Uuid::from_bytes(*aaguid).to_string()
}

/// Transport hints as stored: a comma list.
pub fn join_transports(transports: &[String]) -> String {
    transports.join(",")
}

/// Transport hints from their stored comma list.
pub fn split_transports(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `host` is a name an RP ID can be: lower-case labels of letters, digits and
/// hyphens, not an IP address.
fn valid_rp_id(host: &str) -> bool {
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        });
    let numeric = host
        .bytes()
        .all(|byte| byte.is_ascii_digit() || byte == b'.');
    labels_ok && !numeric
}

/// An origin as the browser serialises it (`scheme://host[:port]`), from a URL given in
/// settings; `None` when the text is not an absolute http(s) URL without path, query or
/// fragment beyond `/`.
fn origin_of(text: &str) -> Option<(String, String, String)> {
    let url = Url::parse(text).ok()?;
    let scheme = url.scheme().to_owned();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = url.host_str()?.to_owned();
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    Some((scheme, host, url.origin().ascii_serialization()))
}

/// Read the relying party from settings through `get`: `WEBAUTHN_RP_ID` (default: the
/// host of `public_base_url`), `WEBAUTHN_RP_NAME` (default `app_name`), `WEBAUTHN_ORIGINS`
/// (a comma list; default: `public_base_url`'s origin). `Ok(None)`: passkeys are off, as
/// no `WEBAUTHN_*` setting is given and the public URL is missing or one no passkey can
/// work on (an IP address, `http://` in production). Every problem of explicit settings
/// is reported, none is guessed around: an origin whose host is not the RP ID or under it, an `http://` origin outside
/// development and test, an RP ID that is not a domain name.
pub fn parse_relying_party(
    get: &dyn Fn(&str) -> Option<String>,
    environment: &str,
    public_base_url: &str,
    app_name: &str,
) -> Result<Option<RelyingParty>, Vec<String>> {
    let setting = |name: &str| {
        get(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let mut errors = Vec::new();
    let base = (!public_base_url.is_empty())
        .then(|| origin_of(public_base_url))
        .flatten();
    let explicit = setting("WEBAUTHN_RP_ID").is_some() || setting("WEBAUTHN_ORIGINS").is_some();
    if !explicit {
        // Everything derived from PUBLIC_BASE_URL: a URL no passkey can work on (an IP
        // address, plain HTTP in production) leaves passkeys off rather than stopping a
        // service configured before passkeys existed. Settings given explicitly are held
        // to every rule below.
        let usable = base.as_ref().is_some_and(|(scheme, host, _)| {
            valid_rp_id(host) && (scheme == "https" || allows_plain_http(environment))
        });
        if !usable {
            return Ok(None);
        }
    }
    let rp_id = match setting("WEBAUTHN_RP_ID") {
        Some(id) => id.to_ascii_lowercase(),
        None => match &base {
            Some((_, host, _)) => host.clone(),
            None if setting("WEBAUTHN_ORIGINS").is_some() => {
                return Err(vec![
                    "WEBAUTHN_RP_ID is required with WEBAUTHN_ORIGINS when PUBLIC_BASE_URL \
                     is not set"
                        .into(),
                ]);
            }
            None => return Ok(None),
        },
    };
    if !valid_rp_id(&rp_id) {
        errors.push("WEBAUTHN_RP_ID must be a domain name (no scheme, port or path)".into());
    }
    let name = setting("WEBAUTHN_RP_NAME").unwrap_or_else(|| app_name.to_owned());
    let listed: Vec<String> = match setting("WEBAUTHN_ORIGINS") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect(),
        None => match &base {
            Some((_, _, origin)) => vec![origin.clone()],
            None => {
                errors.push("WEBAUTHN_ORIGINS is required when PUBLIC_BASE_URL is not set".into());
                Vec::new()
            }
        },
    };
    let plain_http = allows_plain_http(environment);
    let mut origins = Vec::new();
    for text in &listed {
        let Some((scheme, host, origin)) = origin_of(text) else {
            errors.push("WEBAUTHN_ORIGINS must list absolute http(s) origins".into());
            continue;
        };
        if scheme == "http" && !plain_http {
            errors.push(
                "WEBAUTHN_ORIGINS may list http:// origins only with ENVIRONMENT=development \
                 or test"
                    .into(),
            );
            continue;
        }
        let under_rp = host == rp_id || host.ends_with(&format!(".{rp_id}"));
        if !under_rp {
            errors.push(format!(
                "WEBAUTHN_ORIGINS: {origin} is not on WEBAUTHN_RP_ID ({rp_id}) or a subdomain \
                 of it"
            ));
            continue;
        }
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if errors.is_empty() && origins.is_empty() {
        errors.push("WEBAUTHN_ORIGINS lists no origin".into());
    }
    if errors.is_empty() {
        Ok(Some(RelyingParty {
            id: rp_id,
            name,
            origins,
        }))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(
        settings: &[(&str, &str)],
        environment: &str,
        base: &str,
    ) -> Result<Option<RelyingParty>, Vec<String>> {
        let map: HashMap<String, String> = settings
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        parse_relying_party(&|name| map.get(name).cloned(), environment, base, "Acme")
    }

    #[test]
    fn the_relying_party_defaults_to_the_public_url() {
        let rp = parse(&[], "production", "https://auth.example.com/")
            .unwrap()
            .unwrap();
        assert_eq!(rp.id, "auth.example.com");
        assert_eq!(rp.name, "Acme");
        assert_eq!(rp.origins, ["https://auth.example.com"]);
        assert_eq!(parse(&[], "production", ""), Ok(None));
    }

    #[test]
    fn origins_may_be_the_rp_id_or_under_it() {
        let rp = parse(
            &[
                ("WEBAUTHN_RP_ID", "Example.com"),
                ("WEBAUTHN_RP_NAME", "Example"),
                (
                    "WEBAUTHN_ORIGINS",
                    "https://example.com, https://app.example.com:8443,https://example.com/",
                ),
            ],
            "production",
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!(rp.id, "example.com");
        assert_eq!(rp.name, "Example");
        assert_eq!(
            rp.origins,
            ["https://example.com", "https://app.example.com:8443"]
        );
    }

    #[test]
    fn a_wrong_relying_party_fails_closed_naming_the_problem() {
        let refused = |settings: &[(&str, &str)], environment: &str| {
            parse(settings, environment, "https://auth.example.com")
                .unwrap_err()
                .join("; ")
        };
        let error = refused(
            &[("WEBAUTHN_ORIGINS", "https://evil.example")],
            "production",
        );
        assert!(error.contains("not on WEBAUTHN_RP_ID"), "{error}");
        // A suffix that is not a label boundary is not a subdomain.
        let error = refused(
            &[("WEBAUTHN_ORIGINS", "https://notauth.example.com")],
            "production",
        );
        assert!(error.contains("not on WEBAUTHN_RP_ID"), "{error}");
        let error = refused(
            &[("WEBAUTHN_ORIGINS", "http://auth.example.com")],
            "production",
        );
        assert!(error.contains("only with ENVIRONMENT"), "{error}");
        let error = refused(&[("WEBAUTHN_RP_ID", "https://example.com")], "production");
        assert!(error.contains("must be a domain name"), "{error}");
        let error = refused(&[("WEBAUTHN_RP_ID", "127.0.0.1")], "production");
        assert!(error.contains("must be a domain name"), "{error}");
        let error = refused(&[("WEBAUTHN_ORIGINS", "auth.example.com")], "production");
        assert!(error.contains("absolute http(s) origins"), "{error}");
        let error = parse(
            &[("WEBAUTHN_ORIGINS", "https://a.example")],
            "production",
            "",
        )
        .unwrap_err()
        .join("; ");
        assert!(error.contains("WEBAUTHN_RP_ID is required"), "{error}");
        let error = parse(&[("WEBAUTHN_RP_ID", "example.com")], "production", "")
            .unwrap_err()
            .join("; ");
        assert!(error.contains("WEBAUTHN_ORIGINS is required"), "{error}");
    }

    #[test]
    fn plain_http_is_for_development_and_test_only() {
        for environment in ["development", "test"] {
            let rp = parse(&[], environment, "http://localhost:8787")
                .unwrap()
                .unwrap();
            assert_eq!(rp.id, "localhost");
            assert_eq!(rp.origins, ["http://localhost:8787"]);
        }
        // Derived from a URL passkeys cannot use: off. Set explicitly: refused.
        assert_eq!(parse(&[], "production", "http://localhost:8787"), Ok(None));
        assert_eq!(parse(&[], "production", "https://127.0.0.1:8787"), Ok(None));
        assert!(parse(
            &[("WEBAUTHN_ORIGINS", "http://localhost:8787")],
            "production",
            "http://localhost:8787"
        )
        .is_err());
    }

    #[test]
    fn names_are_trimmed_bounded_and_defaulted() {
        assert_eq!(passkey_name(None).unwrap(), DEFAULT_NAME);
        assert_eq!(passkey_name(Some("  Laptop ")).unwrap(), "Laptop");
        assert!(passkey_name(Some("   ")).is_err());
        assert!(passkey_name(Some(&"x".repeat(65))).is_err());
        assert_eq!(
            passkey_name(Some(&"é".repeat(64))).unwrap().chars().count(),
            64
        );
        assert!(passkey_name(Some("a\u{0}b")).is_err());
    }

    #[test]
    fn the_challenge_is_read_from_client_data_for_the_lookup_only() {
        let challenge = [9_u8; 32];
        let encoded = URL_SAFE_NO_PAD.encode(challenge);
        let data = format!(r#"{{"type":"webauthn.get","challenge":"{encoded}","origin":"x"}}"#);
        assert_eq!(
            client_data_challenge(data.as_bytes()),
            Some(challenge.to_vec())
        );
        assert_eq!(client_data_challenge(b"{}"), None);
        assert_eq!(client_data_challenge(b"not json"), None);
        assert_eq!(client_data_challenge(br#"{"challenge":"!!"}"#), None);
        assert_eq!(challenge_digest(&challenge), hash_opaque_token(&encoded));
    }

    #[test]
    fn a_user_handle_is_the_uuid_bytes() {
        let id = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
        assert_eq!(user_handle(id).len(), 16);
        assert_eq!(user_handle(id), Uuid::parse_str(id).unwrap().as_bytes());
        assert_eq!(user_handle("u1"), b"u1");
        assert_eq!(
            aaguid_text(&[0; 16]),
            "00000000-0000-0000-0000-000000000000"
        );
        let transports = vec!["hybrid".to_owned(), "internal".to_owned()];
        assert_eq!(split_transports(&join_transports(&transports)), transports);
        assert!(split_transports("").is_empty());
    }
}
