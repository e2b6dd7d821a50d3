//! The email flows: verification, password reset and change of address, each proven by a
//! link token or a six-digit code; and the notices that carry neither.
//!
//! Requests that name an address (resend, reset) do the same amount of storage work
//! whether or not an account matches, and their callers answer the same either way.

use crate::config::Config;
use crate::domain::email::{render, Purpose, TemplateContext};
use crate::domain::lockout::login_subject;
use crate::domain::one_time::{code_from_random, code_matches, hash_code, is_code, IssuedToken};
use crate::domain::secret::{encode_opaque_token, hash_opaque_token, is_well_formed_opaque_token};
use crate::domain::user::{normalize_email, User};
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::passwords;
use crate::service::ports::{Deps, Edge, Mail};
use crate::store::traits::{
    LoginFailureStore, NewToken, OneTimeTokenStore, TokenEffect, UserStore,
};
use serde_json::json;
use uuid::Uuid;

/// A token and code drawn for a message, ready to store and send.
pub struct PreparedToken {
    pub id: String,
    pub purpose: Purpose,
    pub token: String,
    pub code: String,
    pub user_id: String,
    /// The address the message goes to.
    pub email: String,
    pub now: i64,
    pub expires_at: i64,
    /// The digests the store keeps (never the token or the code).
    token_hash: String,
    code_hash: String,
}

fn ttl(config: &Config, purpose: Purpose) -> i64 {
    let email = &config.email;
    match purpose {
        Purpose::VerifyEmail | Purpose::EmailChangeNotice | Purpose::SignupAttemptNotice => {
            email.verify_ttl_seconds
        }
        Purpose::ResetPassword => email.reset_ttl_seconds,
        Purpose::ChangeEmail => email.change_ttl_seconds,
    }
}

fn random_code() -> Result<String, ApiError> {
    loop {
        let value = u32::from_le_bytes(random_bytes::<4>()?);
        if let Some(code) = code_from_random(value) {
            return Ok(code);
        }
    }
}

impl PreparedToken {
    /// Draw a token and a code for a purpose.
    pub fn draw(
        config: &Config,
        purpose: Purpose,
        user_id: &str,
        email: &str,
        now: i64,
    ) -> Result<Self, ApiError> {
        let id = Uuid::new_v4().to_string();
        let token = encode_opaque_token(&random_bytes::<32>()?);
        let code = random_code()?;
        Ok(Self {
            token_hash: hash_opaque_token(&token),
            code_hash: hash_code(&id, &code),
            id,
            purpose,
            token,
            code,
            user_id: user_id.to_owned(),
            email: email.to_owned(),
            now,
            expires_at: now + ttl(config, purpose),
        })
    }

    /// The record that stores it.
    pub fn record(&self) -> NewToken<'_> {
        NewToken {
            id: &self.id,
            user_id: &self.user_id,
            purpose: self.purpose,
            token_hash: &self.token_hash,
            code_hash: &self.code_hash,
            email: &self.email,
            now: self.now,
            expires_at: self.expires_at,
        }
    }
}

/// The page a link of this purpose opens.
fn page_path(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::VerifyEmail | Purpose::EmailChangeNotice | Purpose::SignupAttemptNotice => {
            "/verify-email"
        }
        Purpose::ResetPassword => "/reset-password",
        Purpose::ChangeEmail => "/confirm-email",
    }
}

/// Render and send the message for a stored token.
pub async fn send_token<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    prepared: &PreparedToken,
) -> Result<(), ApiError> {
    let email = &deps.config.email;
    let link = format!(
        "{}{}?token={}",
        email.public_base_url,
        page_path(prepared.purpose),
        prepared.token
    );
    let message = render(
        prepared.purpose,
        &prepared.email,
        &TemplateContext {
            app_name: &email.app_name,
            link: Some(&link),
            code: Some(&prepared.code),
            valid_minutes: (prepared.expires_at - prepared.now) / 60,
            new_email: None,
        },
    );
    deps.edge
        .send_mail(Mail {
            message,
            token: Some(prepared.token.clone()),
            code: Some(prepared.code.clone()),
        })
        .await
}

/// Store a token and send its message.
pub async fn issue_and_send<S: OneTimeTokenStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    prepared: &PreparedToken,
) -> Result<(), ApiError> {
    deps.store.issue_token(&prepared.record()).await?;
    send_token(deps, prepared).await
}

/// Send a notice that carries no token: to the old address when a change to `new_email`
/// was requested (`EmailChangeNotice`), or to an address someone tried to sign up with
/// (`SignupAttemptNotice`).
pub async fn send_notice<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    purpose: Purpose,
    to: &str,
    new_email: Option<&str>,
) -> Result<(), ApiError> {
    let message = render(
        purpose,
        to,
        &TemplateContext {
            app_name: &deps.config.email.app_name,
            link: None,
            code: None,
            valid_minutes: 0,
            new_email,
        },
    );
    deps.edge
        .send_mail(Mail {
            message,
            token: None,
            code: None,
        })
        .await
}

/// How a client proves it received a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    Token(String),
    Code { email: String, code: String },
}

fn invalid_proof(proof: &Proof) -> ApiError {
    match proof {
        Proof::Token(_) => ApiError::invalid("token", "is invalid or expired"),
        Proof::Code { .. } => ApiError::invalid("code", "is invalid or expired"),
    }
}

/// The live token a proof names. A wrong code counts against its token's attempts.
async fn find_token<S: OneTimeTokenStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    purpose: Purpose,
    proof: &Proof,
    now: i64,
) -> Result<IssuedToken, ApiError> {
    let found = match proof {
        Proof::Token(token) => {
            if !is_well_formed_opaque_token(token) {
                return Err(invalid_proof(proof));
            }
            deps.store
                .find_token_by_hash(purpose, &hash_opaque_token(token), now)
                .await?
        }
        Proof::Code { email, code } => {
            let (Ok(email), true) = (normalize_email(email), is_code(code)) else {
                return Err(invalid_proof(proof));
            };
            match deps.store.find_token_by_email(purpose, &email, now).await? {
                Some(token) if code_matches(&token.id, code, &token.code_hash) => Some(token),
                Some(token) => {
                    deps.store
                        .record_failed_code(&token.id, deps.config.email.max_code_attempts, now)
                        .await?;
                    deps.edge.security_event(
                        "code_rejected",
                        json!({ "purpose": purpose.as_str(), "user_id": token.user_id, "attempt": token.attempts + 1 }),
                    );
                    None
                }
                None => None,
            }
        }
    };
    found.ok_or_else(|| invalid_proof(proof))
}

/// Spend a token for its effect; a token spent concurrently by another request is invalid.
async fn spend<S: OneTimeTokenStore, E>(
    deps: &Deps<'_, S, E>,
    token: &IssuedToken,
    effect: TokenEffect<'_>,
    proof: &Proof,
    now: i64,
) -> Result<User, ApiError> {
    deps.store
        .spend_token(token, effect, &Uuid::new_v4().to_string(), now)
        .await?
        .ok_or_else(|| invalid_proof(proof))
}

/// Verify an address; the account's email must still be the one the message went to.
pub async fn verify_email<S: OneTimeTokenStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    proof: &Proof,
    now: i64,
) -> Result<User, ApiError> {
    let token = find_token(deps, Purpose::VerifyEmail, proof, now).await?;
    let user = spend(deps, &token, TokenEffect::VerifyEmail, proof, now).await?;
    if user.email.as_deref() != Some(token.email.as_str()) || !user.email_verified {
        return Err(invalid_proof(proof));
    }
    deps.edge
        .security_event("email_verified", json!({ "user_id": user.id }));
    deps.edge.set_user(&user.id);
    Ok(user)
}

/// Make a confirmed new address the account's email.
pub async fn confirm_email_change<S: OneTimeTokenStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    proof: &Proof,
    now: i64,
) -> Result<User, ApiError> {
    let token = find_token(deps, Purpose::ChangeEmail, proof, now).await?;
    let user = spend(deps, &token, TokenEffect::ChangeEmail, proof, now).await?;
    deps.edge
        .security_event("email_changed", json!({ "user_id": user.id }));
    deps.edge.set_user(&user.id);
    Ok(user)
}

/// Set a new password from a reset token: every session ends, the address is verified, and
/// the account's lockout is lifted.
pub async fn reset_password<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    proof: &Proof,
    new_password: &str,
    now: i64,
) -> Result<User, ApiError>
where
    S: OneTimeTokenStore + UserStore + LoginFailureStore,
{
    let token = find_token(deps, Purpose::ResetPassword, proof, now).await?;
    let owner = deps
        .store
        .find_user(&token.user_id)
        .await?
        .ok_or_else(|| invalid_proof(proof))?;
    deps.config
        .password_policy
        .check(
            "new_password",
            new_password,
            &owner.username,
            owner.email.as_deref(),
        )
        .map_err(|error| ApiError::Validation(vec![error]))?;
    passwords::reject_breached(deps, "new_password", new_password).await?;
    let password_hash = passwords::hash(deps, new_password)?;
    let user = spend(
        deps,
        &token,
        TokenEffect::ResetPassword {
            password_hash: &password_hash,
        },
        proof,
        now,
    )
    .await?;
    deps.edge
        .security_event("password_reset", json!({ "user_id": user.id }));
    deps.edge.set_user(&user.id);
    // Whoever proved the mailbox may sign in at once, even if someone else locked the
    // account with wrong passwords meanwhile. The reset stands even when the counters do
    // not answer; only the unlock is lost.
    let subject = login_subject(Some(&user.id), &user.username);
    let cleared = deps
        .store
        .clear_failures(&deps.config.identifier_digest(&subject))
        .await;
    passwords::lockout_fail_open(deps.edge, "delete", cleared);
    Ok(user)
}

/// Send a new verification message to an address whose account is not verified yet;
/// otherwise the same storage work and nothing sent.
pub async fn resend_verification<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    email: &str,
    now: i64,
) -> Result<(), ApiError>
where
    S: OneTimeTokenStore + UserStore,
{
    match deps.store.find_by_email(email).await? {
        Some(user) if !user.email_verified => {
            let prepared =
                PreparedToken::draw(deps.config, Purpose::VerifyEmail, &user.id, email, now)?;
            issue_and_send(deps, &prepared).await
        }
        _ => Ok(deps.store.equivalent_work(now).await?),
    }
}

/// Send a reset message when `identifier` (an email or a username) names an account with
/// an address; otherwise the same storage work and nothing sent.
pub async fn request_password_reset<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    identifier: &str,
    now: i64,
) -> Result<(), ApiError>
where
    S: OneTimeTokenStore + UserStore,
{
    let user = deps.store.find_by_identifier(identifier).await?;
    match user
        .as_ref()
        .and_then(|user| user.email.as_deref().map(|email| (user, email)))
    {
        Some((user, email)) => {
            let prepared =
                PreparedToken::draw(deps.config, Purpose::ResetPassword, &user.id, email, now)?;
            issue_and_send(deps, &prepared).await?;
            deps.edge
                .security_event("password_reset_requested", json!({ "user_id": user.id }));
            Ok(())
        }
        None => Ok(deps.store.equivalent_work(now).await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::auth::{signup, SignupInput};
    use crate::service::block_on;
    use crate::service::testing::{RecordingEdge, World};
    use crate::store::memory::MemoryStore;

    const PASSWORD: &str = "a long passphrase for tests";

    fn with_account(store: &MemoryStore, edge: &RecordingEdge, config: &Config) {
        let deps = Deps {
            store,
            edge,
            config,
        };
        let input = SignupInput {
            username: "ada".into(),
            email: Some("ada@example.com".into()),
            password: PASSWORD.into(),
        };
        block_on(signup(&deps, input, 1_000)).unwrap();
    }

    fn last_mail(edge: &RecordingEdge) -> (String, String) {
        let mail = edge.mail.borrow();
        let last = mail.last().unwrap();
        (last.token.clone().unwrap(), last.code.clone().unwrap())
    }

    #[test]
    fn the_emailed_token_verifies_the_address_once() {
        let world = World::new(&[]);
        with_account(&world.store, &world.edge, &world.config);
        let deps = world.deps();
        let (token, _) = last_mail(&world.edge);
        let user = block_on(verify_email(&deps, &Proof::Token(token.clone()), 1_010)).unwrap();
        assert!(user.email_verified);
        let again = block_on(verify_email(&deps, &Proof::Token(token), 1_011)).unwrap_err();
        assert_eq!(again, ApiError::invalid("token", "is invalid or expired"));
    }

    #[test]
    fn wrong_codes_spend_the_token_after_the_allowed_attempts() {
        let world = World::new(&[("CODE_MAX_ATTEMPTS", "3")]);
        with_account(&world.store, &world.edge, &world.config);
        let deps = world.deps();
        let (_, code) = last_mail(&world.edge);
        let wrong = if code == "000000" { "000001" } else { "000000" };
        let proof = |code: &str| Proof::Code {
            email: "ADA@example.com".into(),
            code: code.into(),
        };
        for _ in 0..3 {
            let error = block_on(verify_email(&deps, &proof(wrong), 1_010)).unwrap_err();
            assert_eq!(error, ApiError::invalid("code", "is invalid or expired"));
        }
        let right = block_on(verify_email(&deps, &proof(&code), 1_011)).unwrap_err();
        assert_eq!(
            right.status(),
            422,
            "the token is spent: even the right code fails"
        );
        assert_eq!(
            world
                .edge
                .event_names()
                .iter()
                .filter(|name| *name == "code_rejected")
                .count(),
            3
        );
    }

    #[test]
    fn a_reset_sets_the_password_ends_every_session_and_lifts_the_lockout() {
        let world = World::new(&[]);
        with_account(&world.store, &world.edge, &world.config);
        let deps = world.deps();
        world
            .store
            .failures
            .borrow_mut()
            .insert("anything".into(), Default::default());
        let subject = login_subject(Some(&world.store.users.borrow()[0].id), "ada");
        world
            .store
            .failures
            .borrow_mut()
            .insert(world.config.identifier_digest(&subject), Default::default());
        block_on(request_password_reset(&deps, "ada", 1_010)).unwrap();
        let (token, _) = last_mail(&world.edge);
        let weak = block_on(reset_password(
            &deps,
            &Proof::Token(token.clone()),
            "ada",
            1_011,
        ));
        assert_eq!(weak.unwrap_err().status(), 422, "the policy holds");
        let user = block_on(reset_password(
            &deps,
            &Proof::Token(token),
            "a brand new passphrase",
            1_012,
        ))
        .unwrap();
        assert!(user.email_verified, "the mailbox was proven");
        assert!(world
            .store
            .sessions
            .borrow()
            .iter()
            .all(|stored| stored.revoked_at.is_some()));
        assert_eq!(
            world.store.failures.borrow().len(),
            1,
            "only this account's lockout is lifted"
        );
    }

    #[test]
    fn requests_for_unknown_addresses_send_nothing_and_answer_the_same() {
        let world = World::new(&[]);
        with_account(&world.store, &world.edge, &world.config);
        let deps = world.deps();
        let sent = world.edge.mail.borrow().len();
        block_on(request_password_reset(&deps, "nobody@example.com", 1_010)).unwrap();
        block_on(resend_verification(&deps, "nobody@example.com", 1_010)).unwrap();
        assert_eq!(world.edge.mail.borrow().len(), sent);
        block_on(resend_verification(&deps, "ada@example.com", 1_011)).unwrap();
        assert_eq!(world.edge.mail.borrow().len(), sent + 1);
        // The new message supersedes the first.
        let live = world
            .store
            .tokens
            .borrow()
            .iter()
            .filter(|stored| stored.used_at.is_none())
            .count();
        assert_eq!(live, 1);
    }
}
