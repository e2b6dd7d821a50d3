//! Second factors: enrolling an authenticator app (TOTP) and confirming it, recovery codes,
//! finishing a sign-in with a code (`mfa_token`), step-up of a signed-in session, and the
//! administrator's reset.
//!
//! The `mfa_token` a right password (or a provider's word) hands out is a one-time value of
//! the provider flow's kind (`oauth_grants`, kind `mfa`): 5 minutes, bound to the account
//! and to how the first factor was proven. It is spent by taking it (one `DELETE ...
//! RETURNING`); a wrong code puts it back with one more attempt counted, until the fifth,
//! so a typo does not cost the whole sign-in while guessing stays bounded (5 codes per
//! password proof, and each wrong code is a failed login of the account, which the lockout
//! counts). Two concurrent attempts with one token: one takes it, the other finds none.
//!
//! A TOTP code is accepted once: its time step is stored by a compare-and-set, so of two
//! requests with one code exactly one passes. A recovery code is spent by a compare-and-set
//! on its `used_at`. Codes, secrets, recovery codes and `mfa_token`s never reach a log line
//! or an audit entry.

use crate::domain::audit::AuditAction;
use crate::domain::identity::GrantKind;
use crate::domain::lockout::{login_subject, Gate};
use crate::domain::metrics::Event;
use crate::domain::mfa::{
    Factor, MfaTicket, Proof, SessionLevel, FACTOR_TOTP, MAX_TICKET_ATTEMPTS, NONCE_BYTES,
};
use crate::domain::recovery;
use crate::domain::secret::hash_opaque_token;
use crate::domain::totp::{self, TotpSecret};
use crate::domain::user::User;
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::auth::{record_login_failure, signed_in, start_session, SignedIn, Via};
use crate::service::mfa_gate::put_ticket;
pub use crate::service::mfa_gate::{has_confirmed_factor, require_step_up, MfaChallenge};
use crate::service::passkeys;
use crate::service::passwords::lockout_fail_open;
use crate::service::ports::{Deps, Edge};
use crate::store::traits::{
    AuditStore, Confirmation, FactorStore, LoginFailureStore, NewFactor, OAuthGrantStore,
    PasskeyStore, SessionStore, UserStore,
};
use serde_json::json;
use uuid::Uuid;

/// A new pending TOTP factor and what the user is shown once.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub factor_id: String,
    pub enrolment: totp::Enrolment,
}

/// An account's second factors and how many recovery codes are left.
#[derive(Debug)]
pub struct MfaStatus {
    pub factors: Vec<Factor>,
    pub recovery_codes_remaining: u64,
}

/// Open the account's sealed TOTP secret.
fn open_secret<S, E: Edge>(deps: &Deps<'_, S, E>, factor: &Factor) -> Result<TotpSecret, ApiError> {
    deps.config
        .totp_sealing_key()
        .open(&factor.sealed_secret, factor.user_id.as_bytes())
        .and_then(|plain| String::from_utf8(plain).ok())
        .and_then(|text| TotpSecret::from_base32(&text))
        .ok_or_else(|| {
            // A changed IDENTIFIER_DIGEST_KEY, or an altered row: the factor cannot be
            // checked, and nothing about it is logged but its id.
            ApiError::internal("totp secret", format!("factor {} does not open", factor.id))
        })
}

/// What a user typed as a TOTP code, without spaces.
fn typed_code(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Check a second factor of `user_id` and spend it (a TOTP step or a recovery code); count
/// the result. `false` for a wrong, replayed or malformed one.
async fn check_proof<S: FactorStore + PasskeyStore + UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    proof: &Proof,
    now: i64,
) -> Result<bool, ApiError> {
    let passed = match proof {
        Proof::Totp(code) => {
            let factors = deps.store.factors_of(user_id).await?;
            match factors.iter().find(|factor| factor.is_confirmed()) {
                Some(factor) => {
                    let secret = open_secret(deps, factor)?;
                    let last = factor.last_used_step.and_then(|s| u64::try_from(s).ok());
                    match totp::verify(&secret, &typed_code(code), now, last)
                        .and_then(|step| i64::try_from(step).ok())
                    {
                        Some(step) => deps.store.use_totp_step(&factor.id, step).await?,
                        None => false,
                    }
                }
                None => false,
            }
        }
        Proof::RecoveryCode(code) => match recovery::digest(user_id, code) {
            Some(digest) => deps.store.use_recovery_code(user_id, &digest, now).await?,
            None => false,
        },
        // An assertion for a challenge issued to this account, by one of its passkeys
        // (`passkeys::verify_assertion` checks both, and spends the challenge).
        Proof::Passkey(response) => {
            match passkeys::verify_assertion(deps, response, Some(user_id), now).await? {
                Ok(verified) => verified.user.id == user_id,
                Err(refused) => {
                    deps.edge.security_event(
                        "passkey_refused",
                        json!({ "user_id": user_id, "reason": refused.reason, "step": "mfa" }),
                    );
                    false
                }
            }
        }
    };
    let result = if passed { "success" } else { "failure" };
    deps.edge.count(Event::Mfa {
        factor: proof.factor(),
        result,
    });
    if !passed {
        deps.edge.security_event(
            "mfa_failed",
            json!({ "user_id": user_id, "factor": proof.factor() }),
        );
    }
    Ok(passed)
}

fn invalid_ticket() -> ApiError {
    ApiError::Unauthorized("The sign-in expired or was already completed: sign in again".into())
}

/// Finish a sign-in with its `mfa_token` and a second factor: a session at `aal2`.
///
/// A wrong code answers 401 and counts as a failed login of the account (its lockout); the
/// token survives it, up to [`MAX_TICKET_ATTEMPTS`] wrong codes. A locked account is
/// refused before the code is looked at.
pub async fn verify<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    mfa_token: &str,
    proof: &Proof,
    now: i64,
) -> Result<SignedIn, ApiError>
where
    S: UserStore
        + SessionStore
        + AuditStore
        + LoginFailureStore
        + FactorStore
        + PasskeyStore
        + OAuthGrantStore,
{
    let digest = hash_opaque_token(mfa_token);
    let Some(payload) = deps.store.take_grant(GrantKind::Mfa, &digest, now).await? else {
        deps.edge
            .security_event("mfa_failed", json!({ "reason": "invalid_token" }));
        return Err(invalid_ticket());
    };
    let mut ticket: MfaTicket =
        serde_json::from_str(&payload).map_err(|error| ApiError::internal("mfa ticket", error))?;
    let Some(user) = deps.store.find_user(&ticket.user_id).await? else {
        return Err(invalid_ticket());
    };
    if let Some(detail) = user.ban_state(now).login_refusal() {
        return Err(ApiError::Forbidden(detail));
    }
    let subject = login_subject(Some(&user.id), "");
    let failure_key = deps.config.identifier_digest(&subject);
    let failures = lockout_fail_open(
        deps.edge,
        "read",
        deps.store.load_failures(&failure_key).await,
    );
    if let Gate::Locked {
        retry_after_seconds,
    } = deps.config.lockout.gate(&failures, now)
    {
        deps.edge.count(Event::LoginFailure);
        deps.edge.security_event(
            "login_locked",
            json!({ "started": false, "user_id": user.id, "step": "mfa" }),
        );
        return Err(ApiError::LoginLocked(retry_after_seconds));
    }
    if !check_proof(deps, &user.id, proof, now).await? {
        record_login_failure(deps, &failure_key, failures, now, &subject).await;
        deps.edge.count(Event::LoginFailure);
        ticket.attempts += 1;
        if ticket.attempts < MAX_TICKET_ATTEMPTS {
            put_ticket(deps, &digest, &ticket, now).await?;
        }
        let entry = deps
            .audit(AuditAction::LoginFailed, now)
            .on(&user.id)
            .with("reason", "wrong_second_factor")
            .with("factor", proof.factor());
        deps.store.record_audit(&entry).await?;
        return Err(ApiError::Unauthorized("Invalid code".into()));
    }
    if !failures.is_clear() {
        let cleared = deps.store.clear_failures(&failure_key).await;
        lockout_fail_open(deps.edge, "delete", cleared);
    }
    let level = SessionLevel::first_factor(&ticket.amr).raised_by(proof.amr(), now);
    let via = ticket
        .provider
        .as_deref()
        .map_or(Via::Password, Via::Provider);
    start_session(deps, user, ticket.rehashed.as_deref(), via, &level, now).await
}

/// Passkey request options for a pending sign-in: the `mfa_token` is looked at, not spent
/// (it is put back as it was), and the challenge is bound to its account.
pub async fn passkey_options<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    mfa_token: &str,
    now: i64,
) -> Result<serde_json::Value, ApiError>
where
    S: OAuthGrantStore + PasskeyStore,
{
    let digest = hash_opaque_token(mfa_token);
    let Some(payload) = deps.store.take_grant(GrantKind::Mfa, &digest, now).await? else {
        return Err(invalid_ticket());
    };
    let ticket: MfaTicket =
        serde_json::from_str(&payload).map_err(|error| ApiError::internal("mfa ticket", error))?;
    put_ticket(deps, &digest, &ticket, now).await?;
    passkeys::authentication_options(deps, Some(&ticket.user_id), now).await
}

/// Passkey request options for the caller's step-up; `NotFound` without a passkey.
pub async fn step_up_passkey_options<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    now: i64,
) -> Result<serde_json::Value, ApiError> {
    if deps.store.passkeys_of(user_id).await?.is_empty() {
        return Err(ApiError::NotFound);
    }
    passkeys::authentication_options(deps, Some(user_id), now).await
}

/// Start enrolling an authenticator app: a new pending factor (replacing a pending one),
/// and the secret, URI and QR code to show once. `MfaAlreadyEnabled` when one is active.
pub async fn enrol<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    now: i64,
) -> Result<TotpEnrolment, ApiError> {
    if has_confirmed_factor(deps, &user.id).await? {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    let account = user.email.as_deref().unwrap_or(&user.username);
    let enrolment = totp::enrol(
        &random_bytes::<{ totp::SECRET_BYTES }>()?,
        &deps.config.email.app_name,
        account,
    )
    .ok_or_else(|| ApiError::internal("totp enrolment", "label too long for a QR code"))?;
    let sealed = deps
        .config
        .totp_sealing_key()
        .seal(
            &random_bytes::<NONCE_BYTES>()?,
            enrolment.secret.as_bytes(),
            user.id.as_bytes(),
        )
        .ok_or_else(|| ApiError::internal("totp secret", "sealing failed"))?;
    let factor_id = Uuid::new_v4().to_string();
    let stored = deps
        .store
        .put_pending_totp(&NewFactor {
            id: &factor_id,
            user_id: &user.id,
            sealed_secret: &sealed,
            now,
        })
        .await?;
    if !stored {
        // Confirmed meanwhile by a concurrent request.
        return Err(ApiError::MfaAlreadyEnabled);
    }
    Ok(TotpEnrolment {
        factor_id,
        enrolment,
    })
}

/// Ten new recovery codes and their digests.
fn new_recovery_codes(user_id: &str) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let codes = recovery::generate(&random_bytes::<{ recovery::RANDOM_BYTES }>()?);
    let digests = codes
        .iter()
        .map(|code| recovery::digest(user_id, code))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::internal("recovery codes", "a generated code is malformed"))?;
    Ok((codes, digests))
}

fn wrong_code() -> ApiError {
    ApiError::invalid("code", "is not the authenticator app's current code")
}

/// Confirm the pending factor with its first code: it becomes active, ten recovery codes
/// are issued (shown once), and the session that proved it is raised to `aal2`. A wrong
/// code is a 422 on `code`.
pub async fn confirm<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    session_id: &str,
    code: &str,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let factors = deps.store.factors_of(&user.id).await?;
    if factors.iter().any(Factor::is_confirmed) {
        return Err(ApiError::MfaAlreadyEnabled);
    }
    let Some(pending) = factors.into_iter().next() else {
        return Err(ApiError::NotFound);
    };
    let secret = open_secret(deps, &pending)?;
    let step = totp::verify(&secret, &typed_code(code), now, None)
        .and_then(|step| i64::try_from(step).ok());
    let Some(step) = step else {
        deps.edge.count(Event::Mfa {
            factor: FACTOR_TOTP,
            result: "failure",
        });
        deps.edge.security_event(
            "mfa_failed",
            json!({ "user_id": user.id, "factor": FACTOR_TOTP, "step": "confirm" }),
        );
        return Err(wrong_code());
    };
    let (codes, digests) = new_recovery_codes(&user.id)?;
    let level = user.session_level.clone().unwrap_or_default().raised(now);
    let entry = deps
        .audit(AuditAction::TotpEnrolled, now)
        .by_self(&user.id)
        .with("factor_id", pending.id.as_str());
    let confirmed = deps
        .store
        .confirm_totp(&Confirmation {
            factor_id: &pending.id,
            user_id: &user.id,
            step,
            recovery_digests: &digests,
            session_id,
            level: &level,
            now,
            entry: &entry,
        })
        .await?;
    if !confirmed {
        // Replaced or confirmed by a concurrent request.
        return Err(wrong_code());
    }
    deps.edge.count(Event::Mfa {
        factor: FACTOR_TOTP,
        result: "success",
    });
    deps.edge
        .security_event("mfa_enrolled", json!({ "user_id": user.id }));
    Ok(codes)
}

/// The account's factors and its unused recovery codes.
pub async fn status<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
) -> Result<MfaStatus, ApiError> {
    let factors = deps.store.factors_of(user_id).await?;
    let recovery_codes_remaining = deps.store.recovery_codes_remaining(user_id).await?;
    Ok(MfaStatus {
        factors,
        recovery_codes_remaining,
    })
}

/// Remove the caller's authenticator app and recovery codes (step-up first). `NotFound`
/// when there is none.
pub async fn remove<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    now: i64,
) -> Result<(), ApiError> {
    require_step_up(deps, user, now)?;
    let entry = deps.audit(AuditAction::TotpRemoved, now).by_self(&user.id);
    if !deps.store.remove_factors(&user.id, &entry).await? {
        return Err(ApiError::NotFound);
    }
    deps.edge
        .security_event("mfa_removed", json!({ "user_id": user.id }));
    Ok(())
}

/// Ten new recovery codes for the caller, replacing the old ones (step-up first).
/// `NotFound` without an active factor.
pub async fn regenerate_recovery_codes<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    require_step_up(deps, user, now)?;
    let (codes, digests) = new_recovery_codes(&user.id)?;
    let entry = deps
        .audit(AuditAction::RecoveryCodesRegenerated, now)
        .by_self(&user.id);
    if !deps
        .store
        .replace_recovery_codes(&user.id, &digests, now, &entry)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(codes)
}

/// Raise the caller's session with a second factor: `aal2`, proven now, and a new access
/// token for the same session (its refresh token stays as it is). A wrong code is a 422 on
/// `code` (or `recovery_code`) and counts toward the account's lockout.
pub async fn step_up<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    session_id: &str,
    proof: &Proof,
    now: i64,
) -> Result<SignedIn, ApiError>
where
    S: FactorStore + PasskeyStore + UserStore + LoginFailureStore,
{
    if !user.mfa_enabled {
        return Err(ApiError::NotFound);
    }
    let subject = login_subject(Some(&user.id), "");
    let failure_key = deps.config.identifier_digest(&subject);
    let failures = lockout_fail_open(
        deps.edge,
        "read",
        deps.store.load_failures(&failure_key).await,
    );
    if let Gate::Locked {
        retry_after_seconds,
    } = deps.config.lockout.gate(&failures, now)
    {
        return Err(ApiError::LoginLocked(retry_after_seconds));
    }
    if !check_proof(deps, &user.id, proof, now).await? {
        record_login_failure(deps, &failure_key, failures, now, &subject).await;
        return Err(ApiError::invalid(proof.field(), "did not prove the factor"));
    }
    let level = user
        .session_level
        .clone()
        .unwrap_or_default()
        .raised_by(proof.amr(), now);
    if !deps
        .store
        .raise_session(session_id, &user.id, &level)
        .await?
    {
        return Err(ApiError::Unauthorized("Session is no longer valid".into()));
    }
    deps.edge
        .security_event("mfa_step_up", json!({ "user_id": user.id }));
    signed_in(deps, user.clone(), session_id, String::new(), &level, now).await
}

/// An administrator removes every second factor of `target`: the authenticator app, its
/// recovery codes and the passkeys (the user signs in with the password alone again and may
/// enrol anew). `NotFound` when there was none.
pub async fn admin_reset<S: FactorStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    actor_id: &str,
    target: &User,
    now: i64,
) -> Result<(), ApiError> {
    let entry = deps
        .audit(AuditAction::MfaReset, now)
        .by(actor_id)
        .on(&target.id);
    // Passkeys too: they are second factors, and a user who lost the device that holds
    // them signs in with the password again only once they are gone.
    if !deps.store.reset_factors(&target.id, &entry).await? {
        return Err(ApiError::NotFound);
    }
    deps.edge.security_event(
        "mfa_reset",
        json!({ "user_id": target.id, "actor_id": actor_id }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::auth::{login, signup, SignIn, SignupInput, SignupOutcome};
    use crate::service::block_on;
    use crate::service::testing::World;
    use crate::store::traits::UserStore;

    const PASSWORD: &str = "a long passphrase for tests";
    const T0: i64 = 1_800_000_000;

    /// Sign up `ada` and return the account as a live-session lookup reads it.
    fn account(world: &World, now: i64) -> (User, String) {
        let deps = world.deps();
        let input = SignupInput {
            username: "ada".into(),
            email: Some("ada@example.com".into()),
            password: PASSWORD.into(),
        };
        let SignupOutcome::SignedIn(session) = block_on(signup(&deps, input, now)).unwrap() else {
            panic!("signed in")
        };
        (
            caller(world, &session.user.id, &session.session_id, now),
            session.session_id,
        )
    }

    fn caller(world: &World, user_id: &str, session_id: &str, now: i64) -> User {
        block_on(
            world
                .store
                .find_by_live_session(user_id, session_id, now, now),
        )
        .unwrap()
        .unwrap()
    }

    /// Enrol and confirm; returns the secret and the recovery codes.
    fn enrolled(
        world: &World,
        user: &User,
        session_id: &str,
        now: i64,
    ) -> (TotpSecret, Vec<String>) {
        let deps = world.deps();
        let enrolment = block_on(enrol(&deps, user, now)).unwrap();
        let secret = TotpSecret::from_base32(&enrolment.enrolment.secret).unwrap();
        let codes = block_on(confirm(
            &deps,
            user,
            session_id,
            &totp::code_at(&secret, now),
            now,
        ))
        .unwrap();
        (secret, codes)
    }

    fn challenge_of(outcome: SignIn) -> MfaChallenge {
        match outcome {
            SignIn::MfaRequired(challenge) => challenge,
            SignIn::SignedIn(_) => panic!("a second factor was expected"),
        }
    }

    #[test]
    fn enrolment_seals_the_secret_and_confirmation_issues_ten_codes_and_raises_the_session() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let deps = world.deps();
        let enrolment = block_on(enrol(&deps, &user, T0)).unwrap();
        assert!(
            enrolment
                .enrolment
                .otpauth_uri
                .contains("ada%40example.com")
                || enrolment.enrolment.otpauth_uri.contains("ada@example.com")
        );
        let stored = world.store.factors.borrow()[0].clone();
        assert!(stored.sealed_secret.starts_with("v1."));
        assert!(!stored.sealed_secret.contains(&enrolment.enrolment.secret));
        // A second enrolment replaces the pending one.
        let again = block_on(enrol(&deps, &user, T0 + 1)).unwrap();
        assert_eq!(world.store.factors.borrow().len(), 1);
        let secret = TotpSecret::from_base32(&again.enrolment.secret).unwrap();
        let wrong = block_on(confirm(&deps, &user, &session_id, "000000", T0 + 2));
        assert_eq!(wrong.unwrap_err().status(), 422);
        let codes = block_on(confirm(
            &deps,
            &user,
            &session_id,
            &totp::code_at(&secret, T0 + 2),
            T0 + 2,
        ))
        .unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(world.store.recovery_codes.borrow().len(), 10);
        let raised = caller(&world, &user.id, &session_id, T0 + 3);
        assert!(raised.mfa_enabled);
        let level = raised.session_level.clone().unwrap();
        assert_eq!(level.amr, ["pwd", "otp"]);
        assert_eq!(level.aal2_at, Some(T0 + 2));
        let audit = world.store.audit.borrow();
        assert_eq!(audit.last().unwrap().action, AuditAction::TotpEnrolled);
        drop(audit);
        // Active now: no second enrolment.
        assert_eq!(
            block_on(enrol(&deps, &raised, T0 + 4)).unwrap_err(),
            ApiError::MfaAlreadyEnabled
        );
    }

    #[test]
    fn login_then_verify_signs_in_at_aal2_and_a_code_is_accepted_once() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let sessions = world.store.sessions.borrow().len();
        let challenge = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        assert_eq!(challenge.factors, ["totp"]);
        assert_eq!(
            world.store.sessions.borrow().len(),
            sessions,
            "no session yet"
        );
        let code = totp::code_at(&secret, T0 + 60);
        let signed_in = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(code.clone()),
            T0 + 60,
        ))
        .unwrap();
        let stored = world.store.sessions.borrow().last().unwrap().level.clone();
        assert_eq!(stored.amr, ["pwd", "otp"]);
        assert_eq!(stored.aal, crate::domain::mfa::Aal::Aal2);
        assert!(!signed_in.access_token.is_empty());
        // The token is spent; a new sign-in cannot reuse the accepted code.
        let spent = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(code.clone()),
            T0 + 61,
        ));
        assert_eq!(spent.unwrap_err().status(), 401);
        let again = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 62)).unwrap());
        let replay = block_on(verify(&deps, &again.mfa_token, &Proof::Totp(code), T0 + 62));
        assert_eq!(replay.unwrap_err().status(), 401);
    }

    #[test]
    fn a_ticket_absorbs_four_wrong_codes_and_the_fifth_spends_it_each_counting_toward_lockout() {
        let world = World::new(&[("LOGIN_LOCKOUT_THRESHOLD", "20")]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let challenge = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        for attempt in 0..5 {
            let wrong = block_on(verify(
                &deps,
                &challenge.mfa_token,
                &Proof::Totp("000000".into()),
                T0 + 61 + attempt,
            ));
            assert_eq!(
                wrong.unwrap_err(),
                ApiError::Unauthorized("Invalid code".into())
            );
        }
        let right = totp::code_at(&secret, T0 + 70);
        let spent = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(right),
            T0 + 70,
        ));
        assert_eq!(spent.unwrap_err(), invalid_ticket());
        let failures = world.store.failures.borrow();
        assert_eq!(failures.values().next().unwrap().failures, 5);
    }

    #[test]
    fn wrong_codes_lock_the_account() {
        let world = World::new(&[("LOGIN_LOCKOUT_THRESHOLD", "3")]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let challenge = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        for at in 0..3 {
            let _ = block_on(verify(
                &deps,
                &challenge.mfa_token,
                &Proof::Totp("000000".into()),
                T0 + 61 + at,
            ));
        }
        let right = totp::code_at(&secret, T0 + 65);
        let locked = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(right),
            T0 + 65,
        ));
        assert!(matches!(locked.unwrap_err(), ApiError::LoginLocked(_)));
    }

    #[test]
    fn a_recovery_code_works_once() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let (_, codes) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let first = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        let proof = Proof::RecoveryCode(codes[3].to_uppercase());
        block_on(verify(&deps, &first.mfa_token, &proof, T0 + 60)).unwrap();
        let status = block_on(super::status(&deps, &user.id)).unwrap();
        assert_eq!(status.recovery_codes_remaining, 9);
        let second = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 61)).unwrap());
        let again = block_on(verify(&deps, &second.mfa_token, &proof, T0 + 61));
        assert_eq!(again.unwrap_err().status(), 401);
    }

    #[test]
    fn step_up_is_needed_for_sensitive_operations_and_a_code_raises_the_session() {
        let world = World::new(&[("STEP_UP_SECONDS", "600")]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        // Confirmation raised this session: fresh for ten minutes.
        let fresh = caller(&world, &user.id, &session_id, T0 + 600);
        assert!(require_step_up(&deps, &fresh, T0 + 600).is_ok());
        let stale = caller(&world, &user.id, &session_id, T0 + 601);
        assert_eq!(
            block_on(regenerate_recovery_codes(&deps, &stale, T0 + 601)).unwrap_err(),
            ApiError::StepUpRequired
        );
        assert_eq!(
            block_on(remove(&deps, &stale, T0 + 601)).unwrap_err(),
            ApiError::StepUpRequired
        );
        let wrong = block_on(step_up(
            &deps,
            &stale,
            &session_id,
            &Proof::Totp("000000".into()),
            T0 + 620,
        ));
        assert_eq!(wrong.unwrap_err().status(), 422);
        let code = totp::code_at(&secret, T0 + 620);
        let raised = block_on(step_up(
            &deps,
            &stale,
            &session_id,
            &Proof::Totp(code),
            T0 + 620,
        ))
        .unwrap();
        assert_eq!(raised.session_id, session_id);
        let now_fresh = caller(&world, &user.id, &session_id, T0 + 621);
        let codes = block_on(regenerate_recovery_codes(&deps, &now_fresh, T0 + 621)).unwrap();
        assert_eq!(codes.len(), 10);
        block_on(remove(&deps, &now_fresh, T0 + 622)).unwrap();
        assert!(world.store.factors.borrow().is_empty());
        assert!(world.store.recovery_codes.borrow().is_empty());
        // Without a factor, a password alone signs in again.
        assert!(matches!(
            block_on(login(&deps, "ada", PASSWORD, T0 + 700)).unwrap(),
            SignIn::SignedIn(_)
        ));
    }

    #[test]
    fn a_provider_sign_in_of_an_account_with_a_factor_needs_it_too() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let stored = world.store.users.borrow()[0].clone();
        let outcome = block_on(crate::service::auth::provider_session(
            &deps,
            stored,
            "github",
            T0 + 60,
        ))
        .unwrap();
        let challenge = challenge_of(outcome);
        assert!(!format!("{challenge:?}").contains(&challenge.mfa_token));
        let code = totp::code_at(&secret, T0 + 60);
        let signed_in = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(code),
            T0 + 60,
        ))
        .unwrap();
        assert!(!signed_in.access_token.is_empty());
        let level = world.store.sessions.borrow().last().unwrap().level.clone();
        assert_eq!(level.amr, ["fed", "otp"]);
        let audit = world.store.audit.borrow();
        assert_eq!(audit.last().unwrap().details["provider"], "github");
    }

    #[test]
    fn an_outdated_password_hash_is_replaced_when_the_second_factor_completes_the_sign_in() {
        use crate::domain::password::{HashParams, PasswordHasherConfig, Verification};
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let (secret, _) = enrolled(&world, &user, &session_id, T0);
        // A hash made with other parameters than the service's (8 KiB, one pass).
        let older = PasswordHasherConfig::new(HashParams {
            memory_kib: 16,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        let outdated = older.hash(PASSWORD, &[9; 16]).unwrap();
        world.store.users.borrow_mut()[0].password_hash = outdated.clone();
        let deps = world.deps();
        let challenge = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        // Nothing is stored before the second factor.
        assert_eq!(world.store.users.borrow()[0].password_hash, outdated);
        let code = totp::code_at(&secret, T0 + 90);
        block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp(code),
            T0 + 90,
        ))
        .unwrap();
        let stored = world.store.users.borrow()[0].password_hash.clone();
        assert_ne!(stored, outdated);
        assert_eq!(
            deps.config.hasher.verify(PASSWORD, &stored).unwrap(),
            Verification::Match
        );
    }

    #[test]
    fn an_admin_reset_removes_the_factors_with_an_audit_entry() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        block_on(admin_reset(&deps, "admin-id", &user, T0 + 1)).unwrap();
        let audit = world.store.audit.borrow();
        let entry = audit.last().unwrap();
        assert_eq!(entry.action, AuditAction::MfaReset);
        assert_eq!(entry.actor_id.as_deref(), Some("admin-id"));
        drop(audit);
        assert_eq!(
            block_on(admin_reset(&deps, "admin-id", &user, T0 + 2)).unwrap_err(),
            ApiError::NotFound
        );
    }

    #[test]
    fn an_admin_reset_removes_passkeys_too_so_the_password_signs_in_alone() {
        let world = World::new(&[]);
        let (user, _) = account(&world, T0);
        world
            .store
            .passkeys
            .borrow_mut()
            .push(crate::domain::passkey::Passkey {
                id: "00000000-0000-4000-8000-0000000000aa".into(),
                user_id: user.id.clone(),
                credential_id: "Y3JlZA".into(),
                public_key: "a2V5".into(),
                algorithm: -7,
                sign_count: 0,
                name: "Lost phone".into(),
                aaguid: "00000000-0000-0000-0000-000000000000".into(),
                backup_eligible: false,
                backed_up: false,
                transports: Vec::new(),
                created_at: T0,
                last_used_at: None,
            });
        let deps = world.deps();
        // The passkey is the account's second factor: the password alone does not sign in.
        let asked = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 1)).unwrap());
        assert_eq!(asked.factors, ["passkey"]);
        block_on(admin_reset(&deps, "admin-id", &user, T0 + 2)).unwrap();
        assert!(world.store.passkeys.borrow().is_empty());
        assert_eq!(
            world.store.audit.borrow().last().unwrap().action,
            AuditAction::MfaReset
        );
        assert!(matches!(
            block_on(login(&deps, "ada", PASSWORD, T0 + 3)).unwrap(),
            SignIn::SignedIn(_)
        ));
    }

    #[test]
    fn no_secret_code_or_token_reaches_a_security_event() {
        let world = World::new(&[]);
        let (user, session_id) = account(&world, T0);
        let (secret, codes) = enrolled(&world, &user, &session_id, T0);
        let deps = world.deps();
        let challenge = challenge_of(block_on(login(&deps, "ada", PASSWORD, T0 + 60)).unwrap());
        let _ = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::Totp("123456".into()),
            T0 + 60,
        ));
        let _ = block_on(verify(
            &deps,
            &challenge.mfa_token,
            &Proof::RecoveryCode(codes[0].clone()),
            T0 + 61,
        ));
        let logged = format!("{:?}", world.edge.events.borrow());
        for secret_text in [
            secret.to_base32(),
            challenge.mfa_token.clone(),
            codes[0].clone(),
            "123456".into(),
        ] {
            assert!(!logged.contains(&secret_text), "{secret_text} logged");
        }
    }
}
