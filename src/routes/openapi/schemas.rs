//! The shapes of request and response bodies, as the OpenAPI document describes them.
//!
//! Handlers read bodies field by field (so every field error comes back at once) and build
//! responses with `json!`, so these types are the contract, not the parser. They cannot
//! drift unnoticed: `tests/openapi.test.mjs` validates every body the Worker sends in a tour
//! of the API against these schemas, strictly (no undocumented member, no missing one), and
//! sends the examples given here as real requests.

// The fields are read by the schema derive and by serde, never by Rust code.
#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
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

/// The public view of an account.
#[derive(Serialize, ToSchema)]
pub struct User {
    #[schema(format = "uuid")]
    pub id: String,
    pub username: String,
    #[schema(format = "email", required = true)]
    pub email: Option<String>,
    pub email_verified: bool,
    /// Role names, also in the access token's `roles` claim.
    pub roles: Vec<String>,
    #[schema(format = "date-time", example = "2026-11-26T21:47:24Z")]
    pub created_at: String,
    #[schema(format = "date-time", example = "2026-11-26T21:47:24Z")]
    pub updated_at: String,
}

/// The account after a profile change.
#[derive(Serialize, ToSchema)]
pub struct UpdatedUser {
    #[schema(format = "uuid")]
    pub id: String,
    pub username: String,
    /// The current address; a new one replaces it once confirmed.
    #[schema(format = "email", required = true)]
    pub email: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub updated_at: String,
    /// The new address awaiting confirmation, when this change asked for one.
    #[schema(format = "email")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<String>,
}

/// Tokens for a new or continued session.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// An EdDSA JWT; verify it with `/.well-known/jwks.json`. Claims: `iss`, `aud`, `sub`,
    /// `exp`, `iat`, `nbf`, `jti`, `sid`, `roles`, `email_verified`.
    pub access_token: String,
    /// `<session id>.<secret>`; single use, rotated by `/api/v1/auth/refresh`.
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

/// A live session.
#[derive(Serialize, ToSchema)]
pub struct Session {
    #[schema(format = "uuid")]
    pub id: String,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub last_used_at: String,
    /// The idle expiry; each refresh moves it, up to `absolute_expires_at`.
    #[schema(format = "date-time")]
    pub expires_at: String,
    #[schema(format = "date-time")]
    pub absolute_expires_at: String,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    /// The Cloudflare data centre that created the session.
    #[schema(required = true)]
    pub colo: Option<String>,
    #[schema(required = true)]
    pub country: Option<String>,
    /// Whether the calling token belongs to this session (own list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

/// A list of sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
}

/// A short answer in words.
#[derive(Serialize, ToSchema)]
pub struct Message {
    pub detail: String,
}

/// The answer to a password change.
#[derive(Serialize, ToSchema)]
pub struct PasswordChanged {
    pub detail: String,
    /// How many other sessions ended.
    pub sessions_revoked: u64,
}

/// The answer to a redeemed email token.
#[derive(Serialize, ToSchema)]
pub struct Redeemed {
    pub detail: String,
    pub user: User,
}

/// `GET /api/ping`.
#[derive(Serialize, ToSchema)]
pub struct Ping {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /api/health`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `healthy`, or `unhealthy` with status 503.
    pub status: String,
    /// `connected` or `disconnected`.
    pub database: String,
    pub version: String,
    pub environment: String,
    #[schema(format = "date-time")]
    pub timestamp: String,
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

/// An account as administrators see it: the public view plus its ban.
#[derive(Serialize, ToSchema)]
pub struct AdminUser {
    #[schema(format = "uuid")]
    pub id: String,
    pub username: String,
    #[schema(format = "email", required = true)]
    pub email: Option<String>,
    pub email_verified: bool,
    pub roles: Vec<String>,
    #[schema(format = "date-time")]
    pub created_at: String,
    #[schema(format = "date-time")]
    pub updated_at: String,
    pub banned: bool,
    #[schema(format = "date-time", required = true)]
    pub banned_at: Option<String>,
    /// `null` with `banned: true` is an indefinite ban.
    #[schema(format = "date-time", required = true)]
    pub banned_until: Option<String>,
    #[schema(required = true)]
    pub ban_reason: Option<String>,
    /// After a ban: how many sessions it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_revoked: Option<u64>,
}

/// A page of accounts.
#[derive(Serialize, ToSchema)]
pub struct AdminUserPage {
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
    pub users: Vec<AdminUser>,
}

/// A role and what it allows.
#[derive(Serialize, ToSchema)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

/// Every role.
#[derive(Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<Role>,
}

/// How many sessions an administrative sign-out ended.
#[derive(Serialize, ToSchema)]
pub struct SessionsRevoked {
    pub sessions_revoked: u64,
}

/// One entry of the audit log.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[schema(format = "date-time")]
    pub occurred_at: String,
    pub action: String,
    #[schema(required = true)]
    pub actor_id: Option<String>,
    #[schema(required = true)]
    pub target_id: Option<String>,
    #[schema(required = true)]
    pub request_id: Option<String>,
    #[schema(required = true)]
    pub ip: Option<String>,
    #[schema(required = true)]
    pub colo: Option<String>,
    /// What the action changed, by action.
    pub details: Value,
}

/// A page of audit entries.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub page: u32,
    pub per_page: u32,
    pub total: u64,
    pub total_pages: u64,
    pub entries: Vec<AuditEntry>,
}

/// A form post from an email link's page.
#[derive(Serialize, ToSchema)]
pub struct PageForm {
    pub token: String,
    /// On the reset page only.
    #[schema(format = "password")]
    pub new_password: Option<String>,
}
