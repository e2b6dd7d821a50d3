//! The shapes of request and response bodies that the OpenAPI document describes but the
//! handlers do not yet build from a type: request bodies are read field by field (so every
//! field error comes back at once) and a few responses are still built with `json!`. The
//! bodies that several resources send (accounts, sessions, roles, the audit log) are typed
//! views in `routes::views`, sent as they are documented; the rest move there the same way.
//! Until then nothing here can drift unnoticed: `tests/openapi.test.mjs` validates every
//! body the Worker sends in a tour of the API against these schemas, strictly (no
//! undocumented member, no missing one), and sends the examples given here as real requests.

// The fields are read by the schema derive and by serde, never by Rust code.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// `POST /api/v1/auth/signup`.
#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"username": "ada_lovelace", "password": "correct horse battery staple"}))]
pub struct LoginRequest {
    pub username: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    #[schema(format = "password")]
    pub password: String,
}

/// `POST /api/v1/auth/refresh`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"refresh_token": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d.hJ5f0Xq3cU1vVb0nXr9sWm8Kx2pQe7Tg"}))]
pub struct RefreshRequest {
    /// `<session id>.<secret>`, from the last token response; single use.
    pub refresh_token: String,
}

/// `POST /api/v1/auth/password/change`.
#[derive(Serialize, ToSchema)]
pub struct PasswordChangeRequest {
    #[schema(format = "password")]
    pub current_password: String,
    /// Same policy as at signup; must differ from the current one.
    #[schema(format = "password")]
    pub new_password: String,
}

/// `PATCH /api/v1/users/me`: only the members sent change.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"username": "ada_king"}))]
pub struct ProfileUpdate {
    #[schema(min_length = 3, max_length = 42, pattern = "^[A-Za-z0-9_]+$")]
    pub username: Option<String>,
    /// A new address takes effect once confirmed through the link sent to it (needs
    /// `current_password`); `null` removes the address.
    #[schema(format = "email")]
    pub email: Option<String>,
    #[schema(format = "password")]
    pub current_password: Option<String>,
}

/// `DELETE /api/v1/users/me`: the password, so a stolen token alone cannot delete.
#[derive(Serialize, ToSchema)]
pub struct AccountDeletion {
    #[schema(format = "password")]
    pub password: String,
}

/// A token or a code from an email: `{token}`, or `{email, code}`.
#[derive(Serialize, ToSchema)]
pub struct EmailProof {
    /// The token in the email's link.
    pub token: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    /// The short code in the email, with `email`.
    pub code: Option<String>,
}

/// `POST /api/v1/auth/verify-email/resend`.
#[derive(Serialize, ToSchema)]
pub struct EmailAddress {
    #[schema(format = "email")]
    pub email: String,
}

/// `POST /api/v1/auth/password/reset`: `{email}` or `{username}`.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetRequest {
    #[schema(format = "email")]
    pub email: Option<String>,
    pub username: Option<String>,
}

/// `POST /api/v1/auth/password/reset/confirm`: the email's proof and the new password.
#[derive(Serialize, ToSchema)]
pub struct PasswordResetConfirmation {
    pub token: Option<String>,
    #[schema(format = "email")]
    pub email: Option<String>,
    pub code: Option<String>,
    #[schema(format = "password")]
    pub new_password: String,
}

/// One public key (RFC 8037).
#[derive(Serialize, ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    pub kid: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
}

/// The public keys access tokens are verified with.
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A message the `outbox` email provider stored (development only).
#[derive(Serialize, ToSchema)]
pub struct OutboxMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub purpose: String,
    #[schema(required = true)]
    pub token: Option<String>,
    #[schema(required = true)]
    pub code: Option<String>,
    #[schema(format = "date-time")]
    pub created_at: String,
}

/// The argon2id parameters a development hash used.
#[derive(Serialize, ToSchema)]
pub struct HashParameters {
    #[schema(example = "argon2id")]
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// The size of an isolate's wasm linear memory.
#[derive(Serialize, ToSchema)]
pub struct IsolateMemory {
    pub wasm_memory_bytes: u64,
}

/// `PATCH /api/v1/admin/users/{id}`: only the members sent change.
#[derive(Serialize, ToSchema)]
pub struct AdminUserUpdate {
    pub username: Option<String>,
    /// `null` removes the address; a changed address is unverified unless
    /// `email_verified` says otherwise.
    #[schema(format = "email")]
    pub email: Option<String>,
    pub email_verified: Option<bool>,
}

/// `POST /api/v1/admin/users/{id}/roles`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"role": "admin"}))]
pub struct RoleGrant {
    pub role: String,
}

/// `POST /api/v1/admin/users/{id}/ban`: without `until`, indefinitely.
#[derive(Serialize, ToSchema)]
pub struct BanRequest {
    /// RFC 3339, in the future.
    #[schema(format = "date-time")]
    pub until: Option<String>,
    pub reason: Option<String>,
}

/// A form post from an email link's page.
#[derive(Serialize, ToSchema)]
pub struct PageForm {
    pub token: String,
    /// On the reset page only.
    #[schema(format = "password")]
    pub new_password: Option<String>,
}
