//! Signing up and in: signup, login, refresh token rotation and password change. Each
//! returns what the answer needs (a signed-in session with its tokens, or why not); the
//! edge renders it.

use crate::domain::audit::{mask_identifier, AuditAction};
use crate::domain::email::Purpose;
use crate::domain::lockout::{login_subject, FailureState, Gate};
use crate::domain::metrics::Event;
use crate::domain::mfa::{SessionLevel, AMR_FEDERATED, AMR_PASSWORD};
use crate::domain::password::{Verification, MAX_PASSWORD_BYTES};
use crate::domain::secret::hash_opaque_token;
use crate::domain::session::{encode_refresh_token, refresh_token_session};
use crate::domain::token::AccessClaims;
use crate::domain::user::{mask_email, User};
use crate::error::{ApiError, INVALID_CREDENTIALS};
use crate::runtime::random_bytes;
use crate::service::email::{self, PreparedToken};
use crate::service::mfa_gate::FirstFactor;
use crate::service::passwords::{self, lockout_fail_open};
use crate::service::ports::{Deps, Edge};
use crate::store::traits::{
    AuditStore, FactorStore, LoginFailureStore, NewSession, NewUser, OAuthGrantStore,
    OneTimeTokenStore, PasskeyStore, RefreshRotation, RotateOutcome, SessionStore, UserStore,
};
use serde_json::json;
use uuid::Uuid;

/// A session that has just signed in, with the tokens to hand to the client.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// The access token's lifetime.
    pub expires_in: u64,
}

/// What a right first factor (a password, or a provider's word) came to: a session, or,
/// when the account has a second factor, the ticket to prove it with.
// One per request, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SignIn {
    SignedIn(SignedIn),
    MfaRequired(crate::service::mfa_gate::MfaChallenge),
}

/// What a signup came to.
#[derive(Debug)]
pub enum SignupOutcome {
    /// Signed up and signed in.
    SignedIn(SignedIn),
    /// The address must be verified before the first login; the account as it would be.
    VerificationRequired(User),
}

/// A signup's fields, checked by the edge (canonical username and email, password policy).
pub struct SignupInput {
    pub username: String,
    pub email: Option<String>,
    pub password: String,
}

/// A fresh refresh token for a session and the digest that is stored for it.
fn new_refresh_token(session_id: &str) -> Result<(String, String), ApiError> {
    let token = encode_refresh_token(session_id, &random_bytes::<32>()?);
    let digest = hash_opaque_token(&token);
    Ok((token, digest))
}

/// Sign an access token for a session of `user` that proved `level`.
pub(crate) async fn signed_in<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: User,
    session_id: &str,
    refresh_token: String,
    level: &SessionLevel,
    now: i64,
) -> Result<SignedIn, ApiError> {
    let tokens = &deps.config.tokens;
    let claims = AccessClaims {
        iss: tokens.issuer.clone(),
        aud: tokens.audience.clone(),
        sub: user.id.clone(),
        jti: Uuid::new_v4().to_string(),
        sid: session_id.to_owned(),
        roles: user.roles.clone(),
        email_verified: user.email_verified,
        amr: level.amr.clone(),
        aal: level.aal.as_str().to_owned(),
    };
    let access_token = deps
        .edge
        .sign_access_token(&deps.config.keys, tokens, claims, now)
        .await?;
    Ok(SignedIn {
        user,
        session_id: session_id.to_owned(),
        access_token,
        refresh_token,
        expires_in: u64::try_from(tokens.ttl_seconds).unwrap_or(0),
    })
}

/// Create an account (and, unless its address must be verified first, its first session).
///
/// When accounts must verify their address, a taken email is not told apart from a fresh
/// signup: the same outcome with an account that was never stored, after the same hash and
/// the same write; the owner of the address hears of it by email. A taken username is
/// still `UsernameTaken`: usernames are public handles (and the store reports the username
/// when both are taken, whatever the email).
pub async fn signup<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    input: SignupInput,
    now: i64,
) -> Result<SignupOutcome, ApiError>
where
    S: UserStore + OneTimeTokenStore,
{
    passwords::reject_breached(deps, "password", &input.password).await?;
    let require_verification = deps.config.email.require_verification;
    let password_hash = passwords::hash(deps, &input.password)?;
    let user_id = Uuid::new_v4().to_string();
    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token(&session_id)?;
    let verification = input
        .email
        .as_deref()
        .map(|email| PreparedToken::draw(deps.config, Purpose::VerifyEmail, &user_id, email, now))
        .transpose()?;
    let device = deps.edge.device();
    let level = SessionLevel::first_factor(AMR_PASSWORD);
    // An account that must verify its email gets no session until it has.
    let session = (!require_verification).then(|| NewSession {
        id: &session_id,
        user_id: &user_id,
        refresh_token_hash: &refresh_hash,
        user_agent: device.user_agent.as_deref(),
        colo: device.colo.as_deref(),
        country: device.country.as_deref(),
        now,
        expiry: deps.config.sessions.start(now),
        level: &level,
    });
    let created = deps
        .store
        .create_user(
            &NewUser {
                id: &user_id,
                username: &input.username,
                email: input.email.as_deref(),
                password_hash: &password_hash,
                email_verified: false,
                now,
            },
            session.as_ref(),
            &deps
                .audit(AuditAction::Signup, now)
                .by_self(&user_id)
                .with("session_id", session_id.as_str()),
            verification.as_ref().map(PreparedToken::record).as_ref(),
        )
        .await;
    let user = User {
        id: user_id,
        username: input.username,
        email: input.email,
        password_hash,
        email_verified: false,
        created_at: now,
        updated_at: now,
        roles: vec!["user".into()],
        banned_at: None,
        banned_until: None,
        ban_reason: None,
        session_signed_in_at: None,
        session_level: None,
        mfa_enabled: false,
    };
    match created {
        Ok(()) => {}
        Err(error) if require_verification && error.is_email_taken() => {
            if let Some(owner) = &user.email {
                email::send_notice(deps, Purpose::SignupAttemptNotice, owner, None).await?;
            }
            deps.edge.security_event(
                "signup_email_taken",
                json!({ "email": user.email.as_deref().map(mask_email) }),
            );
            return Ok(SignupOutcome::VerificationRequired(user));
        }
        Err(error) => return Err(error.into()),
    }
    deps.edge.count(Event::Signup);
    deps.edge.set_user(&user.id);
    if let Some(prepared) = &verification {
        email::send_token(deps, prepared).await?;
    }
    if require_verification {
        return Ok(SignupOutcome::VerificationRequired(user));
    }
    Ok(SignupOutcome::SignedIn(
        signed_in(deps, user, &session_id, refresh_token, &level, now).await?,
    ))
}

fn invalid_credentials() -> ApiError {
    ApiError::Unauthorized(INVALID_CREDENTIALS.into())
}

/// Count a failed login against its subject; log the lockout it may start.
pub(crate) async fn record_login_failure<S: LoginFailureStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    digest: &str,
    state: FailureState,
    now: i64,
    masked: &str,
) {
    let policy = deps.config.lockout;
    let outcome = policy.record_failure(state, now);
    if let Some(seconds) = outcome.locked_for_seconds {
        deps.edge.security_event(
            "login_locked",
            json!({
                "started": true,
                "identifier": masked,
                "lockout_seconds": seconds,
                "lockouts": outcome.state.lockouts,
            }),
        );
    }
    let saved = deps
        .store
        .save_failures(
            digest,
            &outcome.state,
            policy.forget_at(&outcome.state),
            now,
        )
        .await;
    lockout_fail_open(deps.edge, "write", saved);
}

/// Record a refused login (a security log line and an audit entry) and return the error
/// to answer with. `user_id` is the account when one was found; otherwise only a masked
/// identifier is kept.
async fn login_refused<S: AuditStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    reason: &str,
    user_id: Option<&str>,
    identifier: &str,
    error: ApiError,
    now: i64,
) -> ApiError {
    let mut entry = deps
        .audit(AuditAction::LoginFailed, now)
        .with("reason", reason);
    let mut fields = json!({ "reason": reason });
    match user_id {
        Some(user_id) => {
            entry = entry.on(user_id);
            fields["user_id"] = user_id.into();
        }
        None => {
            let masked = mask_identifier(identifier);
            entry = entry.with("identifier", masked.as_str());
            fields["identifier"] = masked.into();
        }
    }
    deps.edge.security_event("login_failed", fields);
    deps.edge.count(Event::LoginFailure);
    match deps.store.record_audit(&entry).await {
        Ok(()) => error,
        // The refusal stands either way; an outage is reported as one.
        Err(outage) => outage.into(),
    }
}

/// Sign in with a username or an email (`identifier`) and a password.
///
/// An unknown account and a wrong password give the same error, both cost one password
/// hash and both count towards the subject's lockout, so neither the answer nor its timing
/// tells whether an account exists. Budget per account (or per identifier that names
/// none); after `LOGIN_LOCKOUT_THRESHOLD` failures the subject is locked before any
/// password is checked.
///
/// With a second factor enrolled, a right password opens no session: the answer is an
/// `mfa_token` for `POST /api/v1/auth/mfa/verify`, and the account's failure count is kept
/// until the second factor is proven (a wrong code counts as a failed login).
pub async fn login<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    identifier: &str,
    password: &str,
    now: i64,
) -> Result<SignIn, ApiError>
where
    S: UserStore
        + SessionStore
        + AuditStore
        + LoginFailureStore
        + FactorStore
        + PasskeyStore
        + OAuthGrantStore,
{
    let identifier = identifier.trim();
    let masked = mask_identifier(identifier);
    if password.len() > MAX_PASSWORD_BYTES {
        // No stored password can be this long; refuse before hashing (argon2 cost grows
        // with input). Independent of the account, so it reveals nothing.
        let refused = invalid_credentials();
        return Err(login_refused(deps, "password_too_long", None, identifier, refused, now).await);
    }

    // The account first: failures and the per-account budget count against it whichever of
    // its names was typed, and against the identifier itself when it names none. The
    // budget and the failure count are then read together.
    let user = deps.store.find_by_identifier(identifier).await?;
    let subject = login_subject(user.as_ref().map(|user| user.id.as_str()), identifier);
    let digest = deps.config.identifier_digest(&subject);
    let (budget, failures) = futures_util::future::join(
        deps.edge.rate_limit_by(
            "login",
            "account",
            &subject,
            deps.config.login_account_rate_limit,
        ),
        deps.store.load_failures(&digest),
    )
    .await;
    budget?;
    let failures = lockout_fail_open(deps.edge, "read", failures);
    let hasher = &deps.config.hasher;
    if let Gate::Locked {
        retry_after_seconds,
    } = deps.config.lockout.gate(&failures, now)
    {
        // Refused before the password is looked at, so the answer is the same for a right
        // and a wrong one; one hash all the same, so the timing is too.
        hasher.burn(password);
        deps.edge.count(Event::LoginFailure);
        deps.edge.security_event(
            "login_locked",
            json!({
                "started": false,
                "identifier": masked,
                "retry_after_seconds": retry_after_seconds,
            }),
        );
        return Err(ApiError::LoginLocked(retry_after_seconds));
    }
    let Some(user) = user else {
        hasher.burn(password);
        record_login_failure(deps, &digest, failures, now, &masked).await;
        let refused = invalid_credentials();
        return Err(login_refused(deps, "unknown_account", None, identifier, refused, now).await);
    };
    let verification = hasher
        .verify(password, &user.password_hash)
        .map_err(|error| ApiError::internal("password verification", error))?;
    if verification == Verification::Mismatch {
        record_login_failure(deps, &digest, failures, now, &masked).await;
        let refused = invalid_credentials();
        let user_id = Some(user.id.as_str());
        return Err(login_refused(deps, "wrong_password", user_id, identifier, refused, now).await);
    }
    // Only after the password is proven: a ban must not reveal that an account exists.
    if let Some(detail) = user.ban_state(now).login_refusal() {
        let refused = ApiError::Forbidden(detail);
        let user_id = Some(user.id.as_str());
        return Err(login_refused(deps, "banned", user_id, identifier, refused, now).await);
    }
    let factors = crate::service::mfa_gate::second_factors(deps, &user.id).await?;
    let has_factor = !factors.is_empty();
    if !failures.is_clear() && !has_factor {
        let cleared = deps.store.clear_failures(&digest).await;
        lockout_fail_open(deps.edge, "delete", cleared);
    }
    if deps.config.email.require_verification && !user.email_verified {
        // Only after the password proved right: the answer reveals nothing to a guesser.
        deps.edge.count(Event::LoginFailure);
        deps.edge.security_event(
            "login_refused",
            json!({ "reason": "email_not_verified", "user_id": user.id }),
        );
        return Err(ApiError::Forbidden(
            "Email address is not verified: use the link or code we sent, or ask for a new one"
                .into(),
        ));
    }
    let rehashed = if verification == Verification::MatchNeedsRehash {
        Some(passwords::hash(deps, password)?)
    } else {
        None
    };
    if has_factor {
        // The password was right; the session waits for the second factor. A rehash rides
        // in the ticket (a hash, never the password) and is stored with the session.
        let first = FirstFactor {
            amr: AMR_PASSWORD,
            provider: None,
            rehashed,
        };
        let challenge =
            crate::service::mfa_gate::challenge(deps, &user.id, first, factors, now).await?;
        return Ok(SignIn::MfaRequired(challenge));
    }

    let level = SessionLevel::first_factor(AMR_PASSWORD);
    Ok(SignIn::SignedIn(
        start_session(deps, user, rehashed.as_deref(), Via::Password, &level, now).await?,
    ))
}

/// How a sign-in was proven, which names its audit entry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Via<'a> {
    Password,
    /// A provider, by its configured name.
    Provider(&'a str),
    /// A passkey, by its id (`user.passkey_login`).
    Passkey(&'a str),
}

/// Open a session for an account whose sign-in has been proven, at the level it reached,
/// with its audit entry (naming the provider or the passkey), and sign its first tokens.
pub(crate) async fn start_session<S: SessionStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: User,
    rehashed: Option<&str>,
    via: Via<'_>,
    level: &SessionLevel,
    now: i64,
) -> Result<SignedIn, ApiError> {
    let session_id = Uuid::new_v4().to_string();
    let (refresh_token, refresh_hash) = new_refresh_token(&session_id)?;
    let device = deps.edge.device();
    let action = match via {
        Via::Passkey(_) => AuditAction::PasskeyLogin,
        Via::Password | Via::Provider(_) => AuditAction::Login,
    };
    let mut entry = deps
        .audit(action, now)
        .by_self(&user.id)
        .with("session_id", session_id.as_str());
    match via {
        Via::Password => {}
        Via::Provider(provider) => entry = entry.with("provider", provider),
        Via::Passkey(passkey_id) => entry = entry.with("passkey_id", passkey_id),
    }
    deps.store
        .create_session(
            &NewSession {
                id: &session_id,
                user_id: &user.id,
                refresh_token_hash: &refresh_hash,
                user_agent: device.user_agent.as_deref(),
                colo: device.colo.as_deref(),
                country: device.country.as_deref(),
                now,
                expiry: deps.config.sessions.start(now),
                level,
            },
            rehashed,
            &entry,
        )
        .await?;
    deps.edge.count(Event::LoginSuccess);
    deps.edge.set_user(&user.id);
    signed_in(deps, user, &session_id, refresh_token, level, now).await
}

/// Sign in an account a provider vouched for (its one-time code redeemed): a session and
/// tokens as a login gives, under the same rule that an address must be verified first
/// when `REQUIRE_EMAIL_VERIFICATION` says so. The ban was checked when the code was.
///
/// An account with a second factor gets an `mfa_token` instead, as a password login does.
pub async fn provider_session<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: User,
    provider: &str,
    now: i64,
) -> Result<SignIn, ApiError>
where
    S: SessionStore + FactorStore + PasskeyStore + OAuthGrantStore,
{
    if deps.config.email.require_verification && !user.email_verified {
        deps.edge.security_event(
            "login_refused",
            json!({ "reason": "email_not_verified", "user_id": user.id, "provider": provider }),
        );
        return Err(ApiError::Forbidden(
            "Email address is not verified: add and verify an address, then sign in".into(),
        ));
    }
    let factors = crate::service::mfa_gate::second_factors(deps, &user.id).await?;
    if !factors.is_empty() {
        let first = FirstFactor {
            amr: AMR_FEDERATED,
            provider: Some(provider),
            rehashed: None,
        };
        let challenge =
            crate::service::mfa_gate::challenge(deps, &user.id, first, factors, now).await?;
        return Ok(SignIn::MfaRequired(challenge));
    }
    let level = SessionLevel::first_factor(AMR_FEDERATED);
    Ok(SignIn::SignedIn(
        start_session(deps, user, None, Via::Provider(provider), &level, now).await?,
    ))
}

/// Sign in an account whose passkey assertion verified (`service::passkeys`): a session
/// and tokens as a login gives, under the same rule that an address must be verified
/// first when `REQUIRE_EMAIL_VERIFICATION` says so. The ban was checked with the assertion.
pub async fn passkey_session<S: SessionStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: User,
    passkey_id: &str,
    now: i64,
) -> Result<SignedIn, ApiError> {
    if deps.config.email.require_verification && !user.email_verified {
        deps.edge.count(Event::LoginFailure);
        deps.edge.security_event(
            "login_refused",
            json!({ "reason": "email_not_verified", "user_id": user.id, "passkey_id": passkey_id }),
        );
        return Err(ApiError::Forbidden(
            "Email address is not verified: use the link or code we sent, or ask for a new one"
                .into(),
        ));
    }
    // Passwordless sign-in asks for user verification: the key in hand and the PIN or
    // biometric that unlocked it are two factors, so the session starts at aal2.
    let level = SessionLevel::passkey(now);
    start_session(deps, user, None, Via::Passkey(passkey_id), &level, now).await
}

/// Exchange a refresh token for a new access token and the token's successor. The
/// session's rotation is serialised, so concurrent refreshes with one token all get the
/// same successor (within the grace window) and a token reused after that ends the session.
pub async fn refresh<S: RefreshRotation, E: Edge>(
    deps: &Deps<'_, S, E>,
    presented: &str,
    now: i64,
) -> Result<SignedIn, ApiError> {
    let refused = || ApiError::Unauthorized("Invalid or expired refresh token".into());
    let Some(session_id) = refresh_token_session(presented) else {
        deps.edge
            .security_event("refresh_rejected", json!({ "reason": "malformed" }));
        return Err(refused());
    };
    let reply = deps
        .store
        .rotate(
            session_id,
            &hash_opaque_token(presented),
            deps.edge.origin(),
            deps.config.refresh_rate_limit,
        )
        .await?;
    deps.edge
        .apply_rate_limit("refresh", "session", reply.decision)?;
    let Some(outcome) = reply.outcome else {
        return Err(ApiError::internal(
            "refresh rotation",
            "an allowed rotation came back without its outcome",
        ));
    };
    // The new access token keeps the level the session reached, as the rotation read it.
    let (refresh_token, user, level) = match outcome {
        RotateOutcome::Rotated {
            refresh_token,
            user,
            level,
        }
        | RotateOutcome::Replayed {
            refresh_token,
            user,
            level,
        } => (refresh_token, user, level),
        RotateOutcome::Reused { user_id } => {
            deps.edge.count(Event::RefreshTokenReuse);
            deps.edge.security_event(
                "refresh_token_reuse",
                json!({ "session_id": session_id, "user_id": user_id }),
            );
            return Err(refused());
        }
        RotateOutcome::Invalid => {
            deps.edge.security_event(
                "refresh_rejected",
                json!({ "reason": "not_live", "session_id": session_id }),
            );
            return Err(refused());
        }
    };
    deps.edge.count(Event::Refresh);
    deps.edge.set_user(&user.id);
    signed_in(deps, user, session_id, refresh_token, &level, now).await
}

/// Change the password of the caller, who proves the current one; every other session of
/// the account ends, `session_id` stays signed in. Returns how many sessions ended.
///
/// With a second factor enrolled, the session must have proven it recently (step-up).
pub async fn change_password<S: UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    session_id: &str,
    current: &str,
    new: &str,
    now: i64,
) -> Result<usize, ApiError> {
    crate::service::mfa_gate::require_step_up(deps, user, now)?;
    passwords::confirm(deps, user, "current_password", current).await?;
    passwords::reject_breached(deps, "new_password", new).await?;
    let new_hash = passwords::hash(deps, new)?;
    let revoked = deps
        .store
        .set_password(
            &user.id,
            &new_hash,
            Some(session_id),
            now,
            &deps
                .audit(AuditAction::PasswordChanged, now)
                .by_self(&user.id),
        )
        .await?;
    deps.edge.security_event(
        "password_changed",
        json!({ "user_id": user.id, "sessions_revoked": revoked }),
    );
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::block_on;
    use crate::service::testing::World;

    const PASSWORD: &str = "a long passphrase for tests";

    fn input(username: &str, email: Option<&str>) -> SignupInput {
        SignupInput {
            username: username.into(),
            email: email.map(str::to_owned),
            password: PASSWORD.into(),
        }
    }

    fn signed_in(outcome: SignupOutcome) -> SignedIn {
        match outcome {
            SignupOutcome::SignedIn(signed_in) => signed_in,
            SignupOutcome::VerificationRequired(user) => panic!("no session for {user:?}"),
        }
    }

    #[test]
    fn signup_stores_the_account_its_session_and_audit_entry_and_mails_a_verification() {
        let world = World::new(&[]);
        let deps = world.deps();
        let outcome = block_on(signup(&deps, input("ada", Some("ada@example.com")), 1_000));
        let session = signed_in(outcome.unwrap());
        assert_eq!(session.user.username, "ada");
        assert!(!session.access_token.is_empty());
        assert!(session.refresh_token.starts_with(&session.session_id));
        assert_eq!(world.store.users.borrow().len(), 1);
        assert_eq!(world.store.sessions.borrow().len(), 1);
        assert_eq!(world.store.audit.borrow()[0].action, AuditAction::Signup);
        assert_eq!(world.store.tokens.borrow().len(), 1, "a verification token");
        let mail = world.edge.mail.borrow();
        assert_eq!(mail.len(), 1);
        assert_eq!(mail[0].message.to, "ada@example.com");
        assert!(mail[0].token.is_some() && mail[0].code.is_some());
        assert_ne!(
            world.store.users.borrow()[0].password_hash,
            PASSWORD,
            "stored hashed"
        );
    }

    #[test]
    fn a_taken_username_is_refused_and_writes_nothing() {
        let world = World::new(&[]);
        let deps = world.deps();
        block_on(signup(&deps, input("ada", None), 1_000)).unwrap();
        let error =
            block_on(signup(&deps, input("ada", Some("x@example.com")), 1_001)).unwrap_err();
        assert_eq!(error.code(), "username_taken");
        assert_eq!(world.store.users.borrow().len(), 1);
        assert_eq!(world.store.sessions.borrow().len(), 1);
    }

    #[test]
    fn with_verification_required_a_taken_email_looks_like_a_fresh_signup() {
        let world = World::new(&[("REQUIRE_EMAIL_VERIFICATION", "true")]);
        let deps = world.deps();
        let first = block_on(signup(&deps, input("ada", Some("ada@example.com")), 1_000)).unwrap();
        let second = block_on(signup(&deps, input("eve", Some("ada@example.com")), 1_001)).unwrap();
        for outcome in [first, second] {
            assert!(matches!(outcome, SignupOutcome::VerificationRequired(_)));
        }
        assert_eq!(
            world.store.users.borrow().len(),
            1,
            "the second account was never stored"
        );
        assert!(
            world.store.sessions.borrow().is_empty(),
            "no session before verification"
        );
        let purposes: Vec<_> = world
            .edge
            .mail
            .borrow()
            .iter()
            .map(|mail| mail.message.purpose)
            .collect();
        assert_eq!(
            purposes,
            [Purpose::VerifyEmail, Purpose::SignupAttemptNotice]
        );
        assert!(world
            .edge
            .event_names()
            .contains(&"signup_email_taken".to_owned()));
    }

    #[test]
    fn a_breached_password_is_refused_before_anything_is_stored() {
        let world = World::new(&[("HIBP_CHECK", "true")]);
        let suffix = crate::domain::hibp::range_query(PASSWORD).suffix;
        *world.edge.breach_range.borrow_mut() = Some(format!("{suffix}:42\r\n"));
        let deps = world.deps();
        let error = block_on(signup(&deps, input("ada", None), 1_000)).unwrap_err();
        assert_eq!(error.status(), 422);
        assert!(world.store.users.borrow().is_empty());
        // Unreachable corpus: fails open, with a warning.
        *world.edge.breach_range.borrow_mut() = None;
        block_on(signup(&deps, input("ada", None), 1_000)).unwrap();
        assert_eq!(*world.edge.warnings.borrow(), ["hibp_unavailable"]);
    }

    #[test]
    fn login_refuses_an_unknown_account_and_a_wrong_password_alike_and_audits_both() {
        let world = World::new(&[]);
        let deps = world.deps();
        block_on(signup(&deps, input("ada", Some("ada@example.com")), 1_000)).unwrap();
        let unknown = block_on(login(&deps, "nobody", PASSWORD, 1_010)).unwrap_err();
        let wrong = block_on(login(&deps, "ada", "not the passphrase", 1_010)).unwrap_err();
        assert_eq!(unknown, wrong);
        assert_eq!(unknown.status(), 401);
        let failed: Vec<_> = world
            .store
            .audit
            .borrow()
            .iter()
            .filter(|entry| entry.action == AuditAction::LoginFailed)
            .map(|entry| entry.details["reason"].clone())
            .collect();
        assert_eq!(failed, ["unknown_account", "wrong_password"]);
        // The email names the same account; a new session each time.
        let SignIn::SignedIn(session) =
            block_on(login(&deps, " ADA@example.com ", PASSWORD, 1_020)).unwrap()
        else {
            panic!("no second factor, so a session")
        };
        assert_eq!(session.user.username, "ada");
        assert_eq!(world.store.sessions.borrow().len(), 2);
    }

    #[test]
    fn repeated_failures_lock_the_account_whichever_name_is_typed_and_a_success_clears_them() {
        let world = World::new(&[
            ("LOGIN_LOCKOUT_THRESHOLD", "3"),
            ("RATE_LIMIT_LOGIN_ACCOUNT", "100/60"),
        ]);
        let deps = world.deps();
        block_on(signup(&deps, input("ada", Some("ada@example.com")), 1_000)).unwrap();
        block_on(login(&deps, "ada", "wrong one", 1_001)).unwrap_err();
        block_on(login(&deps, "ada", "wrong two", 1_002)).unwrap_err();
        block_on(login(&deps, "ada", PASSWORD, 1_003)).unwrap();
        assert!(
            world.store.failures.borrow().is_empty(),
            "a success clears the count"
        );
        for (at, name) in [(1_004, "ada"), (1_005, "ada@example.com"), (1_006, "ada")] {
            block_on(login(&deps, name, "wrong", at)).unwrap_err();
        }
        let locked = block_on(login(&deps, "ada@example.com", PASSWORD, 1_007)).unwrap_err();
        assert!(matches!(locked, ApiError::LoginLocked(_)), "{locked:?}");
        assert!(world
            .edge
            .event_names()
            .contains(&"login_locked".to_owned()));
    }

    #[test]
    fn a_banned_account_is_refused_only_after_its_password_is_proven() {
        let world = World::new(&[]);
        let deps = world.deps();
        block_on(signup(&deps, input("ada", None), 1_000)).unwrap();
        world.store.users.borrow_mut()[0].banned_at = Some(1_000);
        let wrong = block_on(login(&deps, "ada", "wrong", 1_010)).unwrap_err();
        assert_eq!(wrong.status(), 401);
        let right = block_on(login(&deps, "ada", PASSWORD, 1_011)).unwrap_err();
        assert_eq!(right.status(), 403);
    }

    #[test]
    fn an_overlong_password_is_refused_without_looking_up_the_account() {
        let world = World::new(&[]);
        let deps = world.deps();
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let error = block_on(login(&deps, "ada", &long, 1_000)).unwrap_err();
        assert_eq!(error.status(), 401);
        assert_eq!(
            world.store.audit.borrow()[0].details["reason"],
            "password_too_long"
        );
        assert!(world.edge.budgets.borrow().is_empty(), "no budget spent");
    }

    #[test]
    fn refresh_rotates_once_and_a_reused_token_ends_the_session() {
        let world = World::new(&[]);
        let deps = world.deps();
        let first = signed_in(block_on(signup(&deps, input("ada", None), 1_000)).unwrap());
        let second = block_on(refresh(&deps, &first.refresh_token, 1_010)).unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second.session_id, first.session_id);
        let reuse = block_on(refresh(&deps, &first.refresh_token, 1_020)).unwrap_err();
        assert_eq!(reuse.status(), 401);
        assert!(world
            .edge
            .event_names()
            .contains(&"refresh_token_reuse".to_owned()));
        let after = block_on(refresh(&deps, &second.refresh_token, 1_030)).unwrap_err();
        assert_eq!(after.status(), 401, "the session is over");
        let malformed = block_on(refresh(&deps, "garbage", 1_040)).unwrap_err();
        assert_eq!(malformed.status(), 401);
    }

    /// The claims of an access token the test configuration signed.
    fn claims_of(world: &World, token: &str, now: i64) -> AccessClaims {
        crate::domain::token::verify(&world.config.keys, &world.config.tokens, token, now)
            .unwrap()
            .claims
    }

    #[test]
    fn a_refresh_keeps_the_level_the_session_reached_without_reading_it_again() {
        let world = World::new(&[]);
        let deps = world.deps();
        let first = signed_in(block_on(signup(&deps, input("ada", None), 1_000)).unwrap());
        let aal1 = claims_of(&world, &first.access_token, 1_000);
        assert_eq!(
            (aal1.aal.as_str(), aal1.amr.as_slice()),
            ("aal1", &["pwd".to_owned()][..])
        );
        // A step-up with a one-time code, then a passkey, as `service::mfa` records them.
        world.store.sessions.borrow_mut()[0].level = SessionLevel::first_factor(AMR_PASSWORD)
            .raised(1_005)
            .raised_by(crate::domain::mfa::AMR_HARDWARE_KEY, 1_006);
        let second = block_on(refresh(&deps, &first.refresh_token, 1_010)).unwrap();
        let claims = claims_of(&world, &second.access_token, 1_010);
        assert_eq!(claims.aal, "aal2");
        assert_eq!(claims.amr, ["pwd", "otp", "hwk"]);
        assert_eq!(claims.sid, first.session_id);
        assert_eq!(
            second.user.session_level, None,
            "the level travels beside the account, not inside it"
        );
    }

    /// A rotation that always answers as the session's object does for a repeat inside
    /// the grace window.
    struct Replaying(SessionLevel);

    impl RefreshRotation for Replaying {
        async fn rotate(
            &self,
            session_id: &str,
            _presented_hash: &str,
            _origin: crate::domain::audit::Origin,
            _budget: crate::config::RateLimit,
        ) -> Result<crate::store::traits::RotateReply, crate::store::error::StoreError> {
            Ok(crate::store::traits::RotateReply {
                decision: crate::domain::rate_limit::Decision {
                    allowed: true,
                    limit: 10,
                    remaining: 9,
                    reset_seconds: 60,
                    retry_after_seconds: 0,
                },
                outcome: Some(RotateOutcome::Replayed {
                    refresh_token: format!("{session_id}.successor"),
                    user: crate::service::test_account("user-01", &["user"], 1_000),
                    level: self.0.clone(),
                }),
            })
        }
    }

    #[test]
    fn a_replay_inside_the_grace_window_keeps_the_level_its_rotation_read() {
        let world = World::new(&[]);
        let level = SessionLevel::first_factor(AMR_PASSWORD).raised(1_005);
        let store = Replaying(level);
        let deps = Deps {
            store: &store,
            edge: &world.edge,
            config: &world.config,
        };
        let session_id = Uuid::new_v4().to_string();
        let presented = encode_refresh_token(&session_id, &[7; 32]);
        let replayed = block_on(refresh(&deps, &presented, 1_010)).unwrap();
        let claims = claims_of(&world, &replayed.access_token, 1_010);
        assert_eq!(claims.aal, "aal2");
        assert_eq!(claims.amr, ["pwd", "otp"]);
        assert_eq!(replayed.refresh_token, format!("{session_id}.successor"));
        assert_eq!(world.edge.counts.borrow().as_slice(), ["Refresh"]);
    }

    #[test]
    fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
        let world = World::new(&[]);
        let deps = world.deps();
        let first = signed_in(block_on(signup(&deps, input("ada", None), 1_000)).unwrap());
        block_on(login(&deps, "ada", PASSWORD, 1_001)).unwrap();
        let user = world.store.users.borrow()[0].clone();
        let wrong = block_on(change_password(
            &deps,
            &user,
            &first.session_id,
            "nope",
            "another long passphrase",
            1_002,
        ));
        assert_eq!(wrong.unwrap_err().status(), 422);
        let revoked = block_on(change_password(
            &deps,
            &user,
            &first.session_id,
            PASSWORD,
            "another long passphrase",
            1_003,
        ))
        .unwrap();
        assert_eq!(revoked, 1);
        let live: Vec<_> = world
            .store
            .sessions
            .borrow()
            .iter()
            .filter(|stored| stored.revoked_at.is_none())
            .map(|stored| stored.session.id.clone())
            .collect();
        assert_eq!(live, [first.session_id]);
        block_on(login(&deps, "ada", "another long passphrase", 1_004)).unwrap();
    }
}
