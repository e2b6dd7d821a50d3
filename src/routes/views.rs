//! The response bodies the handlers send (accounts, tokens, sessions, roles, the audit log,
//! keys, short answers, the development helpers' answers), as typed views built from domain
//! types. The same types are the OpenAPI document's schemas, so what is sent and what is
//! documented cannot part. Never a password hash.

use crate::domain::access::Role as DomainRole;
use crate::domain::audit::AuditRecord;
use crate::domain::identity::Identity as DomainIdentity;
use crate::domain::query::Page;
use crate::domain::session::Session as DomainSession;
use crate::domain::time::rfc3339_seconds;
use crate::domain::token::KeySet;
use crate::domain::user::User as Account;
use crate::store::traits::StoredMessage;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

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

/// A provider account linked to an account.
#[derive(Serialize, ToSchema)]
pub struct Identity {
    #[schema(format = "uuid")]
    pub id: String,
    /// The provider's configured name (`google`, `github`, ...).
    pub provider: String,
    /// The address the provider last asserted; informational.
    #[schema(format = "email", required = true)]
    pub email: Option<String>,
    #[schema(format = "date-time")]
    pub created_at: String,
    /// The last sign-in through it.
    #[schema(format = "date-time")]
    pub last_used_at: String,
}

impl From<&DomainIdentity> for Identity {
    fn from(identity: &DomainIdentity) -> Self {
        Identity {
            id: identity.id.clone(),
            provider: identity.provider.clone(),
            email: identity.email.clone(),
            created_at: rfc3339_seconds(identity.created_at),
            last_used_at: rfc3339_seconds(identity.last_used_at),
        }
    }
}

/// A passkey of the account.
#[derive(Serialize, ToSchema)]
pub struct Passkey {
    #[schema(format = "uuid")]
    pub id: String,
    /// The name given at registration or since (`Passkey` by default).
    pub name: String,
    /// The authenticator's credential id, base64url.
    pub credential_id: String,
    /// The authenticator model's AAGUID (all zeros when it does not say).
    #[schema(format = "uuid")]
    pub aaguid: String,
    /// A synced passkey (it may be backed up) rather than a device-bound key.
    pub backup_eligible: bool,
    /// Backed up now, as of the last use.
    pub backed_up: bool,
    /// Transport hints (`internal`, `hybrid`, `usb`, ...).
    pub transports: Vec<String>,
    #[schema(format = "date-time")]
    pub created_at: String,
    /// The last sign-in with it; `null` before the first.
    #[schema(format = "date-time", required = true)]
    pub last_used_at: Option<String>,
}

impl From<&crate::domain::passkey::Passkey> for Passkey {
    fn from(passkey: &crate::domain::passkey::Passkey) -> Self {
        Passkey {
            id: passkey.id.clone(),
            name: passkey.name.clone(),
            credential_id: passkey.credential_id.clone(),
            aaguid: passkey.aaguid.clone(),
            backup_eligible: passkey.backup_eligible,
            backed_up: passkey.backed_up,
            transports: passkey.transports.clone(),
            created_at: rfc3339_seconds(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339_seconds),
        }
    }
}

/// An account's passkeys, oldest first.
#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    pub passkeys: Vec<Passkey>,
}

impl PasskeyList {
    pub fn new(passkeys: &[crate::domain::passkey::Passkey]) -> Self {
        PasskeyList {
            passkeys: passkeys.iter().map(Passkey::from).collect(),
        }
    }
}

/// WebAuthn options for the browser (`PublicKeyCredentialCreationOptionsJSON` or
/// `PublicKeyCredentialRequestOptionsJSON`): binary members are base64url. Hand them to
/// `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`, or
/// decode them yourself.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object, example = json!({"challenge": "Yk0aQ8v2p3N5w1cC6xZ9tHfJ4rLmE7uA0sDgKoPqRiU", "timeout": 240000, "rpId": "auth.example.com", "allowCredentials": [], "userVerification": "required"}))]
pub struct WebAuthnOptions(pub serde_json::Value);

/// An account's linked provider accounts, oldest first.
#[derive(Serialize, ToSchema)]
pub struct IdentityList {
    pub identities: Vec<Identity>,
}

impl IdentityList {
    pub fn new(identities: &[DomainIdentity]) -> Self {
        IdentityList {
            identities: identities.iter().map(Identity::from).collect(),
        }
    }
}

/// Where the browser goes to link a provider.
#[derive(Serialize, ToSchema)]
pub struct LinkStart {
    /// `/api/v1/auth/oauth/{provider}/start?link_ticket=…`: single use, 60 seconds. Send
    /// the browser there (a top-level navigation, so the binding cookie is set).
    pub url: String,
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
    /// `exp`, `iat`, `nbf`, `jti`, `sid`, `roles`, `email_verified`, `amr` (RFC 8176:
    /// `pwd`, `otp`, `fed`) and `aal` (`aal1`, or `aal2` after a second factor).
    pub access_token: String,
    /// `<session id>.<secret>`; single use, rotated by `/api/v1/auth/refresh`.
    pub refresh_token: String,
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

/// The signup answer when the address must be verified before the first sign-in: no
/// session yet.
#[derive(Serialize, ToSchema)]
pub struct VerificationRequired {
    /// Always `true`.
    pub verification_required: bool,
    pub detail: String,
    pub user: User,
}

/// What a signup answers: the tokens of its first session or, when accounts must verify
/// their address first, a notice that there is no session yet.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Signup {
    Tokens(TokenResponse),
    VerificationRequired(VerificationRequired),
}

/// One public key (RFC 8037).
#[derive(Serialize, ToSchema)]
pub struct Jwk {
    /// `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    #[schema(example = "OKP")]
    pub kty: String,
    /// `Ed25519` or `P-256`; absent for RSA.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Ed25519")]
    pub crv: Option<String>,
    /// The public key (OKP) or its x coordinate (EC), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The y coordinate (EC), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The modulus (RSA), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The public exponent (RSA), base64url.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// RFC 7638 thumbprint; tokens name it in their `kid` header.
    pub kid: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
    /// The one algorithm this key verifies: `EdDSA`, `ES256` or `RS256`.
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
    /// The database backend that serves: `d1` or `postgres`.
    #[schema(example = "d1")]
    pub backend: String,
    pub version: String,
    pub environment: String,
    #[schema(format = "date-time")]
    pub timestamp: String,
}

impl From<&Account> for User {
    fn from(user: &Account) -> Self {
        User {
            id: user.id.clone(),
            username: user.username.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            roles: user.roles.clone(),
            created_at: rfc3339_seconds(user.created_at),
            updated_at: rfc3339_seconds(user.updated_at),
        }
    }
}

impl AdminUser {
    /// The account with its ban as it stands at `now` (an ended ban shows as none).
    pub fn new(user: &Account, now: i64) -> Self {
        let banned = user.ban_state(now).is_banned();
        let view = User::from(user);
        AdminUser {
            id: view.id,
            username: view.username,
            email: view.email,
            email_verified: view.email_verified,
            roles: view.roles,
            created_at: view.created_at,
            updated_at: view.updated_at,
            banned,
            banned_at: user.banned_at.filter(|_| banned).map(rfc3339_seconds),
            banned_until: user.banned_until.filter(|_| banned).map(rfc3339_seconds),
            ban_reason: user.ban_reason.clone().filter(|_| banned),
            sessions_revoked: None,
        }
    }
}

impl AdminUserPage {
    pub fn new(users: &[Account], page: Page, total: u64, now: i64) -> Self {
        AdminUserPage {
            page: page.page,
            per_page: page.per_page,
            total,
            total_pages: page.total_pages(total),
            users: users.iter().map(|user| AdminUser::new(user, now)).collect(),
        }
    }
}

impl From<crate::service::auth::SignedIn> for TokenResponse {
    /// The tokens of a session, as signup, login, refresh and a provider sign-in answer them.
    fn from(signed_in: crate::service::auth::SignedIn) -> Self {
        TokenResponse {
            access_token: signed_in.access_token,
            refresh_token: signed_in.refresh_token,
            token_type: "bearer".into(),
            expires_in: signed_in.expires_in,
            user: User::from(&signed_in.user),
        }
    }
}

impl Session {
    /// A session; `current` says whether it is the caller's own (only in their own list).
    pub fn new(session: &DomainSession, current: Option<bool>) -> Self {
        Session {
            id: session.id.clone(),
            created_at: rfc3339_seconds(session.created_at),
            last_used_at: rfc3339_seconds(session.last_used_at),
            expires_at: rfc3339_seconds(session.idle_expires_at),
            absolute_expires_at: rfc3339_seconds(session.absolute_expires_at),
            user_agent: session.user_agent.clone(),
            colo: session.colo.clone(),
            country: session.country.clone(),
            current,
        }
    }
}

impl From<&DomainRole> for Role {
    fn from(role: &DomainRole) -> Self {
        Role {
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: role.permissions.clone(),
        }
    }
}

impl From<&AuditRecord> for AuditEntry {
    fn from(record: &AuditRecord) -> Self {
        AuditEntry {
            id: record.id,
            occurred_at: rfc3339_seconds(record.occurred_at),
            action: record.action.clone(),
            actor_id: record.actor_id.clone(),
            target_id: record.target_id.clone(),
            request_id: record.request_id.clone(),
            ip: record.ip.clone(),
            colo: record.colo.clone(),
            details: record.details.clone(),
        }
    }
}

impl AuditPage {
    pub fn new(records: &[AuditRecord], page: Page, total: u64) -> Self {
        AuditPage {
            page: page.page,
            per_page: page.per_page,
            total,
            total_pages: page.total_pages(total),
            entries: records.iter().map(AuditEntry::from).collect(),
        }
    }
}

impl UpdatedUser {
    /// The account after a profile change, with the address awaiting confirmation, if any.
    pub fn new(user: &Account, pending_email: Option<String>) -> Self {
        let view = User::from(user);
        UpdatedUser {
            id: view.id,
            username: view.username,
            email: view.email,
            email_verified: view.email_verified,
            roles: view.roles,
            created_at: view.created_at,
            updated_at: view.updated_at,
            pending_email,
        }
    }
}

impl Message {
    pub fn new(detail: impl Into<String>) -> Self {
        Message {
            detail: detail.into(),
        }
    }
}

impl Jwks {
    /// Every key tokens may be verified with (RFC 7517; RFC 8037 for Ed25519), each with the
    /// one algorithm it is pinned to.
    pub fn new(keys: &KeySet) -> Self {
        Jwks {
            keys: keys
                .public_jwks()
                .into_iter()
                .map(|(kid, jwk)| Jwk {
                    kty: jwk.kty.into(),
                    crv: jwk.crv.map(str::to_owned),
                    x: jwk.x,
                    y: jwk.y,
                    n: jwk.n,
                    e: jwk.e,
                    kid: kid.to_owned(),
                    key_use: "sig".into(),
                    alg: jwk.alg.as_str().into(),
                })
                .collect(),
        }
    }
}

impl From<StoredMessage> for OutboxMessage {
    fn from(row: StoredMessage) -> Self {
        OutboxMessage {
            to: row.to,
            subject: row.subject,
            text: row.text,
            html: row.html,
            purpose: row.purpose,
            token: row.token,
            code: row.code,
            created_at: rfc3339_seconds(row.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_entries_follow_rfc_8037() {
        let keys = KeySet::from_config(
            crate::domain::token::Algorithm::EdDSA,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "",
        )
        .unwrap();
        let jwks = serde_json::to_value(Jwks::new(&keys)).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], keys.signing_kid());
        assert_eq!(key["x"], keys.public_keys()[0].1);
        assert!(
            key.get("d").is_none(),
            "private part must never be published"
        );
    }
}

/// A right password (or provider sign-in) of an account with a second factor: no tokens
/// yet; finish with `POST /api/v1/auth/mfa/verify`.
#[derive(Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, 5 minutes; up to 5 wrong codes.
    pub mfa_token: String,
    /// The factors the account can finish with (`totp`; a recovery code always works too).
    #[schema(example = json!(["totp"]))]
    pub factors: Vec<String>,
}

impl From<crate::service::mfa_gate::MfaChallenge> for MfaRequired {
    fn from(challenge: crate::service::mfa_gate::MfaChallenge) -> Self {
        MfaRequired {
            mfa_required: true,
            mfa_token: challenge.mfa_token,
            factors: challenge.factors.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// What a login (or a provider sign-in's exchange) answers: tokens, or the second factor
/// it needs first.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignIn {
    Tokens(TokenResponse),
    MfaRequired(MfaRequired),
}

impl From<crate::service::auth::SignIn> for SignIn {
    fn from(sign_in: crate::service::auth::SignIn) -> Self {
        match sign_in {
            crate::service::auth::SignIn::SignedIn(signed_in) => {
                SignIn::Tokens(TokenResponse::from(signed_in))
            }
            crate::service::auth::SignIn::MfaRequired(challenge) => {
                SignIn::MfaRequired(MfaRequired::from(challenge))
            }
        }
    }
}

/// A new, pending authenticator-app factor: shown once; confirm it with a code.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    #[schema(format = "uuid")]
    pub factor_id: String,
    /// Base32, for typing into the app by hand.
    pub secret: String,
    /// `otpauth://totp/...`, for apps that take a link.
    pub otpauth_uri: String,
    /// The same URI as a QR code: a standalone SVG document.
    pub qr_svg: String,
}

impl From<crate::service::mfa::TotpEnrolment> for TotpEnrolment {
    fn from(enrolment: crate::service::mfa::TotpEnrolment) -> Self {
        TotpEnrolment {
            factor_id: enrolment.factor_id,
            secret: enrolment.enrolment.secret,
            otpauth_uri: enrolment.enrolment.otpauth_uri,
            qr_svg: enrolment.enrolment.qr_svg,
        }
    }
}

/// Ten recovery codes, shown this once (only their digests are kept).
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    #[schema(example = json!(["04hm-asw9-nf6y"]))]
    pub recovery_codes: Vec<String>,
}

/// One second factor of an account.
#[derive(Serialize, ToSchema)]
pub struct MfaFactor {
    #[schema(format = "uuid")]
    pub id: String,
    /// `totp`.
    pub kind: String,
    #[schema(format = "date-time")]
    pub created_at: String,
    /// `false` while the enrolment waits for its first code.
    pub confirmed: bool,
}

/// An account's second factors.
#[derive(Serialize, ToSchema)]
pub struct MfaStatus {
    pub factors: Vec<MfaFactor>,
    pub recovery_codes_remaining: u64,
}

impl From<&crate::service::mfa::MfaStatus> for MfaStatus {
    fn from(status: &crate::service::mfa::MfaStatus) -> Self {
        MfaStatus {
            factors: status
                .factors
                .iter()
                .map(|factor| MfaFactor {
                    id: factor.id.clone(),
                    kind: factor.kind.clone(),
                    created_at: rfc3339_seconds(factor.created_at),
                    confirmed: factor.is_confirmed(),
                })
                .collect(),
            recovery_codes_remaining: status.recovery_codes_remaining,
        }
    }
}

/// A step-up's answer: a new access token of the same session, now `aal2`. The session's
/// refresh token stays as it was (and its next refresh keeps `aal2`).
#[derive(Serialize, ToSchema)]
pub struct StepUp {
    /// Claims as in the token response, with `amr` and `aal` = `aal2`.
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: String,
    pub expires_in: u64,
    pub user: User,
}

impl From<crate::service::auth::SignedIn> for StepUp {
    fn from(signed_in: crate::service::auth::SignedIn) -> Self {
        StepUp {
            access_token: signed_in.access_token,
            token_type: "bearer".into(),
            expires_in: signed_in.expires_in,
            user: User::from(&signed_in.user),
        }
    }
}
