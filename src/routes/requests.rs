//! The request bodies the handlers read, as types. Each is read by `http::body::read_body`,
//! which checks the body against the schema the type derives and collects every field's
//! problem into one 422 before the type is built; the same schema is the OpenAPI document's,
//! so what is accepted and what is documented cannot part. The handler's own checks (names,
//! addresses, the password policy) add to the same answer.
//!
//! A type that refuses members it does not name (`deny_unknown_fields`) does so because a
//! silently ignored member would let a client believe it changed something it did not (a
//! role, a password). Partial updates use [`Patch`] where `null` removes a value.

use crate::domain::input::{Patch, Problems};
use crate::domain::user::{normalize_email, normalize_username};
use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /api/v1/auth/signup`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "ada_lovelace", "email": "ada@example.com", "password": "correct horse battery staple"}))]
pub struct SignupRequest {
    /// 3–42 letters, digits or underscores; stored lower-case.
    #[schema(min_length = 3, max_length = 42, pattern = "^[A-Za-z0-9_]+$")]
    pub username: String,
    /// Optional; unique case-insensitively. Required when `REQUIRE_EMAIL_VERIFICATION=true`.
    #[schema(format = "email")]
    pub email: Option<String>,
    /// `PASSWORD_MIN_LENGTH` (default 8) to `PASSWORD_MAX_LENGTH` (default 128) characters; not a common
    /// password and not close to the username or email.
    #[schema(min_length = 1, max_length = 128, format = "password")]
    pub password: String,
}

/// `POST /api/v1/auth/login`: `username` may also hold an email address.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"username": "ada_lovelace", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    pub username: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    #[schema(format = "password")]
    pub password: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"refresh_token": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.hJ5f0Xq3cU1vVb0nXr9sWm8Kx2pQe7Tg"}))]
pub struct RefreshRequest {
    /// `<session id>.<secret>`, from the last token response; single use.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/password/change`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(format = "password")]
    pub current_password: String,
    /// Same policy as at signup; must differ from the current one.
    #[schema(format = "password")]
    pub new_password: String,
}

/// `PATCH /api/v1/users/me`: only the members sent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ada_king"}))]
pub struct ProfileUpdate {
    #[schema(min_length = 3, max_length = 42, pattern = "^[A-Za-z0-9_]+$")]
    pub username: Option<String>,
    /// A new address takes effect once confirmed through the link sent to it (needs
    /// `current_password`); `null` removes the address.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "email")]
    pub email: Patch<String>,
    #[schema(format = "password")]
    pub current_password: Option<String>,
}

/// `DELETE /api/v1/users/me`: the password, so a stolen token alone cannot delete.
#[derive(Deserialize, ToSchema)]
pub struct AccountDeletion {
    #[schema(format = "password")]
    pub password: String,
}

/// A token or a code from an email: `{token}`, or `{email, code}`.
#[derive(Deserialize, ToSchema)]
pub struct EmailProof {
    /// The token in the email's link.
    pub token: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    /// The short code in the email, with `email`.
    pub code: Option<String>,
}

/// `POST /api/v1/auth/verify-email/resend`.
#[derive(Deserialize, ToSchema)]
pub struct EmailAddress {
    #[schema(format = "email")]
    pub email: String,
}

/// `POST /api/v1/auth/password/reset`: `{email}` or `{username}`.
#[derive(Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    #[schema(format = "email")]
    pub email: Option<String>,
    pub username: Option<String>,
}

/// `POST /api/v1/auth/password/reset/confirm`: the email's proof and the new password.
#[derive(Deserialize, ToSchema)]
pub struct PasswordResetConfirmation {
    pub token: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    pub code: Option<String>,
    #[schema(format = "password")]
    pub new_password: String,
}

/// `PATCH /api/v1/admin/users/{id}`: only the members sent change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUserUpdate {
    pub username: Option<String>,
    /// `null` removes the address; a changed address is unverified unless
    /// `email_verified` says otherwise.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "email")]
    pub email: Patch<String>,
    pub email_verified: Option<bool>,
}

/// `POST /api/v1/admin/users/{id}/roles`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
pub struct RoleGrant {
    pub role: String,
}

/// `POST /api/v1/admin/users/{id}/ban`: without `until`, indefinitely.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// RFC 3339, in the future.
    #[schema(format = "date-time")]
    pub until: Option<String>,
    pub reason: Option<String>,
}

/// A form post from an email link's page.
// `application/x-www-form-urlencoded`, so read from its pairs rather than by the JSON reader.
#[derive(ToSchema)]
pub struct PageForm {
    pub token: String,
    /// On the reset page only.
    #[schema(format = "password")]
    pub new_password: Option<String>,
}

impl PageForm {
    /// The form from its decoded pairs: the first of a repeated name counts, a missing token
    /// is empty (and then refused as invalid by the flow).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, value)| value.clone())
        };
        PageForm {
            token: value("token").unwrap_or_default(),
            new_password: value("new_password"),
        }
    }
}

/// The optional `username` and `email` of a profile change, checked and canonical;
/// `email: null` is `Some(None)` (remove the address).
pub fn check_username_and_email(
    problems: &mut Problems,
    username: Option<String>,
    email: Patch<String>,
) -> (Option<String>, Option<Option<String>>) {
    let username = username.and_then(|raw| problems.check(normalize_username(&raw)));
    let email = match email {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(raw) => problems.check(normalize_email(&raw)).map(Some),
    };
    (username, email)
}

/// `POST /api/v1/auth/oauth/exchange`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "4fQmY0Zp3tB6hK9sWc2xV7nR1dL8aE5uJ0gT3yO6iPk", "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}))]
pub struct OAuthExchangeRequest {
    /// The one-time code the callback added to `redirect_to`; single use, 60 seconds.
    #[schema(min_length = 1, max_length = 128)]
    pub code: String,
    /// The PKCE verifier of the `code_challenge` the app sent to `start`; required then.
    #[schema(min_length = 43, max_length = 128)]
    pub code_verifier: Option<String>,
}

/// `POST /api/v1/users/me/identities/{provider}/start`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"redirect_to": "https://app.example/linked", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}))]
pub struct LinkStartRequest {
    /// Where the browser comes back with the code that completes the link; must match
    /// `ALLOWED_REDIRECT_URLS`.
    pub redirect_to: String,
    /// A PKCE S256 challenge; completing the link then needs its verifier.
    pub code_challenge: Option<String>,
    /// `S256`, the only method.
    pub code_challenge_method: Option<String>,
}

/// `POST /api/v1/users/me/identities`: complete a link with the callback's code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "4fQmY0Zp3tB6hK9sWc2xV7nR1dL8aE5uJ0gT3yO6iPk", "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}))]
pub struct LinkCompleteRequest {
    /// The one-time code the callback added to `redirect_to`; single use, 60 seconds.
    #[schema(min_length = 1, max_length = 128)]
    pub code: String,
    /// The verifier of the link request's `code_challenge`; required then.
    #[schema(min_length = 43, max_length = 128)]
    pub code_verifier: Option<String>,
}

/// `POST /api/v1/users/me/mfa/totp/confirm`: the authenticator app's current code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "492039"}))]
pub struct TotpConfirmRequest {
    /// Six digits (spaces are ignored).
    #[schema(min_length = 1, max_length = 16)]
    pub code: String,
}

/// `POST /api/v1/auth/mfa/verify`: the sign-in's `mfa_token` and one second factor.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mfa_token": "Vq1b8Jw0H5mN2cX7kR4tY9pL3sD6fG0aZ8eU1iO5rTw", "code": "492039"}))]
pub struct MfaVerifyRequest {
    /// From the login's `mfa_required` answer; 5 minutes, single use.
    #[schema(min_length = 1, max_length = 128)]
    pub mfa_token: String,
    /// The authenticator app's code; or send `recovery_code` instead.
    #[schema(max_length = 16)]
    pub code: Option<String>,
    /// One of the recovery codes (`xxxx-xxxx-xxxx`); works once.
    #[schema(max_length = 64)]
    pub recovery_code: Option<String>,
    /// Or a passkey: `PublicKeyCredential.toJSON()` of `navigator.credentials.get()` for the
    /// options of `POST /api/v1/auth/mfa/passkey/options`.
    #[schema(value_type = Option<Object>)]
    pub passkey: Option<serde_json::Value>,
}

/// `POST /api/v1/auth/mfa/passkey/options`: the pending sign-in whose passkey is asked for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"mfa_token": "b3JkZXJseS1tZmEtdG9rZW4tZXhhbXBsZS12YWx1ZQ"}))]
pub struct MfaPasskeyOptionsRequest {
    #[schema(min_length = 1, max_length = 128)]
    pub mfa_token: String,
}

/// `POST /api/v1/auth/mfa/step-up`: one second factor.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "492039"}))]
pub struct StepUpRequest {
    #[schema(max_length = 16)]
    pub code: Option<String>,
    #[schema(max_length = 64)]
    pub recovery_code: Option<String>,
    /// A passkey's assertion for the options of `POST /api/v1/auth/mfa/step-up/options`.
    #[schema(value_type = Option<Object>)]
    pub passkey: Option<serde_json::Value>,
}

/// The one second factor of a request that may carry a code, a recovery code or a passkey
/// assertion: exactly one of them, a code within its length.
pub fn second_factor(
    problems: &mut Problems,
    code: Option<String>,
    recovery_code: Option<String>,
    passkey: Option<serde_json::Value>,
) -> Option<crate::domain::mfa::Proof> {
    use crate::domain::mfa::Proof;
    use crate::error::FieldError;
    match (code, recovery_code, passkey) {
        (Some(code), None, None) if code.len() <= 16 => Some(Proof::Totp(code)),
        (None, Some(code), None) if code.len() <= 64 => Some(Proof::RecoveryCode(code)),
        (None, None, Some(assertion)) if assertion.is_object() => Some(Proof::Passkey(assertion)),
        (Some(_), None, None) => {
            problems.reject(FieldError::new("code", "is too long"));
            None
        }
        (None, Some(_), None) => {
            problems.reject(FieldError::new("recovery_code", "is too long"));
            None
        }
        (None, None, Some(_)) => {
            problems.reject(FieldError::new("passkey", "must be an object"));
            None
        }
        _ => {
            problems.reject(FieldError::new(
                "code",
                "send exactly one of code, recovery_code or passkey",
            ));
            None
        }
    }
}

/// `POST /api/v1/users/me/passkeys`: register a passkey from the browser's answer to the
/// creation options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Laptop", "response": {"id": "…", "rawId": "…", "type": "public-key", "response": {"clientDataJSON": "…", "attestationObject": "…", "transports": ["internal"]}}}))]
pub struct PasskeyRegisterRequest {
    /// 1 to 64 characters; `Passkey` when absent.
    #[schema(min_length = 1, max_length = 64)]
    pub name: Option<String>,
    /// `PublicKeyCredential.toJSON()` of the credential `navigator.credentials.create()`
    /// returned (binary members base64url).
    #[schema(value_type = Object)]
    pub response: serde_json::Value,
}

/// `PATCH /api/v1/users/me/passkeys/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Work laptop"}))]
pub struct PasskeyRenameRequest {
    /// 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
}

/// `POST /api/v1/auth/passkey/verify`: sign in with the browser's answer to the request
/// options.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"response": {"id": "…", "rawId": "…", "type": "public-key", "response": {"clientDataJSON": "…", "authenticatorData": "…", "signature": "…", "userHandle": "…"}}}))]
pub struct PasskeyVerifyRequest {
    /// `PublicKeyCredential.toJSON()` of the credential `navigator.credentials.get()`
    /// returned (binary members base64url).
    #[schema(value_type = Object)]
    pub response: serde_json::Value,
}
