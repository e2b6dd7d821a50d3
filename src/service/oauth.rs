//! Sign-in through a provider, the parts that need storage but no provider: the state that
//! carries a sign-in from `start` to `callback` (single use, bound to the browser by a
//! cookie), the rules that decide which account a provider's account signs in to, and the
//! one-time code an app exchanges for tokens (single use, 60 seconds, PKCE when the app
//! sent a challenge). The provider calls themselves (discovery, JWKS, token endpoint,
//! GitHub's API) are not here yet; they go through a port of their own.
//!
//! Every secret value (state, cookie, code) is 256 bits from the CSPRNG, stored only as a
//! SHA-256 digest, and compared through that digest or in constant time.

use crate::domain::audit::AuditAction;
use crate::domain::identity::GrantKind;
use crate::domain::metrics::Event;
use crate::domain::oauth::{is_s256_challenge, pkce_matches, username_base, ProviderAccount};
use crate::domain::password::NO_PASSWORD;
use crate::domain::secret::{constant_time_eq, encode_opaque_token, hash_opaque_token};
use crate::domain::user::{normalize_email, User};
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::ports::{Deps, Edge};
use crate::store::error::{StoreError, Unique};
use crate::store::traits::{IdentityStore, NewIdentity, NewUser, OAuthGrantStore, UserStore};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

/// What a state remembers from `start` for the callback. Stored in the database under the
/// state's digest; it holds the PKCE verifier sent to the provider and the nonce, so it
/// lives only as long as the state (10 minutes) and is removed when spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSignIn {
    pub provider: String,
    pub redirect_to: String,
    pub nonce: String,
    /// The PKCE verifier of the service's own request to the provider.
    pub verifier: String,
    /// The app's S256 challenge, when it sent one; its code then needs the verifier.
    pub app_challenge: Option<String>,
    /// The signed-in account that asked to link this provider (`None`: a sign-in).
    pub link_user: Option<String>,
    /// Digest of the browser's cookie value.
    binding: String,
}

/// A started sign-in: what goes to the provider and what goes into the cookie.
#[derive(Debug)]
pub struct Begun {
    pub state: String,
    /// The `__Host-` cookie's value, binding the state to this browser.
    pub cookie: String,
    pub nonce: String,
    /// The S256 challenge of `PendingSignIn::verifier`, for the authorization request.
    pub challenge: String,
}

/// A fresh 256-bit secret, base64url.
fn secret() -> Result<String, ApiError> {
    Ok(encode_opaque_token(&random_bytes::<32>()?))
}

/// The refusal of any state that does not carry a sign-in through: unknown, spent,
/// expired, another provider's, or without this browser's cookie. One answer for all, so
/// a probe learns nothing about which.
fn invalid_state() -> ApiError {
    ApiError::InvalidState
}

/// Start a sign-in (or, with `link_user`, a link) through `provider`: check where the app
/// is to be sent back and its challenge, then store a state. The caller has checked that
/// the provider is enabled.
pub async fn begin<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    redirect_to: &str,
    app_challenge: Option<(&str, Option<&str>)>,
    link_user: Option<&str>,
    now: i64,
) -> Result<Begun, ApiError> {
    if !deps.config.oauth.allows_redirect(redirect_to) {
        deps.edge
            .security_event("oauth_redirect_refused", json!({ "provider": provider }));
        return Err(ApiError::MalformedRequest(
            "redirect_to is not an allowed redirect URL".into(),
        ));
    }
    let app_challenge = match app_challenge {
        None => None,
        Some((challenge, method)) => {
            // Only S256: `plain` would put the verifier itself in the browser's history.
            if method.unwrap_or("S256") != "S256" || !is_s256_challenge(challenge) {
                return Err(ApiError::MalformedRequest(
                    "code_challenge must be an S256 challenge (code_challenge_method=S256)".into(),
                ));
            }
            Some(challenge.to_owned())
        }
    };
    let begun = Begun {
        state: secret()?,
        cookie: secret()?,
        nonce: secret()?,
        challenge: String::new(),
    };
    let verifier = secret()?;
    let pending = PendingSignIn {
        provider: provider.to_owned(),
        redirect_to: redirect_to.to_owned(),
        nonce: begun.nonce.clone(),
        verifier: verifier.clone(),
        app_challenge,
        link_user: link_user.map(str::to_owned),
        binding: hash_opaque_token(&begun.cookie),
    };
    let payload = serde_json::to_string(&pending)
        .map_err(|error| ApiError::internal("oauth state", error))?;
    deps.store
        .put_grant(
            GrantKind::State,
            &hash_opaque_token(&begun.state),
            &payload,
            now,
            now + GrantKind::State.ttl_seconds(),
        )
        .await?;
    Ok(Begun {
        challenge: crate::domain::oauth::pkce_challenge(&verifier),
        ..begun
    })
}

/// Spend the state of a callback and check it belongs to `provider` and to this browser.
/// The state is spent even when the check fails, so a stolen one is burned by its first
/// use.
pub async fn resume<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    state: Option<&str>,
    cookie: Option<&str>,
    now: i64,
) -> Result<PendingSignIn, ApiError> {
    let Some(state) = state.filter(|state| state.len() <= 128) else {
        return Err(invalid_state());
    };
    let payload = deps
        .store
        .take_grant(GrantKind::State, &hash_opaque_token(state), now)
        .await?;
    let pending: PendingSignIn = payload
        .as_deref()
        .and_then(|payload| serde_json::from_str(payload).ok())
        .ok_or_else(invalid_state)?;
    let browser = cookie.map(hash_opaque_token).unwrap_or_default();
    let bound = constant_time_eq(browser.as_bytes(), pending.binding.as_bytes());
    if pending.provider != provider || !bound {
        deps.edge.security_event(
            "oauth_state_refused",
            json!({ "provider": provider, "cookie": cookie.is_some() }),
        );
        return Err(invalid_state());
    }
    Ok(pending)
}

/// The account a provider's account signs in to, linking or creating it by these rules:
/// 1. a linked identity signs in to its account (and, when linking, must be the caller's);
/// 2. when linking, the identity is linked to the caller's account;
/// 3. an account with the same email is linked only when the provider asserts the address
///    verified and the account's email is verified too; when only the provider vouches,
///    `LinkRequired` (the user signs in and links); when the provider says nothing (or
///    false), a new account is made, without that address, which is someone else's;
/// 4. otherwise a new account without a password, its username derived from the profile.
pub async fn account_for<S: UserStore + IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    link_user: Option<&str>,
    now: i64,
) -> Result<User, ApiError> {
    let email = account
        .email
        .as_deref()
        .and_then(|email| normalize_email(email).ok());
    if let Some(identity) = deps.store.find_identity(provider, &account.subject).await? {
        if link_user.is_some_and(|user| user != identity.user_id) {
            return Err(ApiError::IdentityTaken);
        }
        let entry = deps
            .audit(AuditAction::ProviderLogin, now)
            .by_self(&identity.user_id)
            .with("provider", provider);
        deps.store
            .touch_identity(&identity.id, email.as_deref(), now, &entry)
            .await?;
        return existing(deps, &identity.user_id, now).await;
    }
    if let Some(user_id) = link_user {
        link(deps, provider, account, email.as_deref(), user_id, now).await?;
        return existing(deps, user_id, now).await;
    }
    let mut new_email = email.clone();
    if let Some(address) = email.as_deref() {
        if let Some(local) = deps.store.find_by_email(address).await? {
            match account.email_verified {
                Some(true) if local.email_verified => {
                    link(deps, provider, account, email.as_deref(), &local.id, now).await?;
                    return existing(deps, &local.id, now).await;
                }
                Some(true) => {
                    deps.edge.security_event(
                        "oauth_link_required",
                        json!({ "provider": provider, "user_id": local.id }),
                    );
                    return Err(ApiError::LinkRequired);
                }
                _ => new_email = None,
            }
        }
    }
    create(deps, provider, account, new_email.as_deref(), now).await
}

/// An existing account, refused while banned.
async fn existing<S: UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    now: i64,
) -> Result<User, ApiError> {
    let user = deps
        .store
        .find_user(user_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(detail) = user.ban_state(now).login_refusal() {
        return Err(ApiError::Forbidden(detail));
    }
    Ok(user)
}

async fn link<S: IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    email: Option<&str>,
    user_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    let identity_id = Uuid::new_v4().to_string();
    let entry = deps
        .audit(AuditAction::IdentityLinked, now)
        .by_self(user_id)
        .with("provider", provider)
        .with("identity_id", identity_id.as_str());
    deps.store
        .link_identity(
            &NewIdentity {
                id: &identity_id,
                user_id,
                provider,
                subject: &account.subject,
                email,
                now,
            },
            &entry,
        )
        .await?;
    Ok(())
}

/// How many usernames are tried before giving up (the base, then with random suffixes).
const USERNAME_ATTEMPTS: usize = 5;

async fn create<S: UserStore + IdentityStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    provider: &str,
    account: &ProviderAccount,
    email: Option<&str>,
    now: i64,
) -> Result<User, ApiError> {
    let base = username_base(&[account.name_hint.as_deref(), email]);
    let user_id = Uuid::new_v4().to_string();
    let identity_id = Uuid::new_v4().to_string();
    let email_verified = email.is_some() && account.email_verified == Some(true);
    for attempt in 0..USERNAME_ATTEMPTS {
        let username = if attempt == 0 {
            base.clone()
        } else {
            let [a, b] = random_bytes::<2>()?;
            format!("{base}_{:04}", u16::from_be_bytes([a, b]) % 10_000)
        };
        let entry = deps
            .audit(AuditAction::Signup, now)
            .by_self(&user_id)
            .with("provider", provider);
        let created = deps
            .store
            .create_user_with_identity(
                &NewUser {
                    id: &user_id,
                    username: &username,
                    email,
                    password_hash: NO_PASSWORD,
                    email_verified,
                    now,
                },
                &NewIdentity {
                    id: &identity_id,
                    user_id: &user_id,
                    provider,
                    subject: &account.subject,
                    email,
                    now,
                },
                &entry,
            )
            .await;
        match created {
            Ok(()) => {
                deps.edge.count(Event::Signup);
                return existing(deps, &user_id, now).await;
            }
            Err(StoreError::Taken(Unique::Username)) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ApiError::UsernameTaken)
}

/// What an exchange code stands for.
#[derive(Debug, Serialize, Deserialize)]
struct CodeGrant {
    user_id: String,
    provider: String,
    app_challenge: Option<String>,
}

/// Issue the one-time code the callback hands to the app (60 seconds, single use).
pub async fn issue_code<S: OAuthGrantStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    pending: &PendingSignIn,
    now: i64,
) -> Result<String, ApiError> {
    let code = secret()?;
    let payload = serde_json::to_string(&CodeGrant {
        user_id: user_id.to_owned(),
        provider: pending.provider.clone(),
        app_challenge: pending.app_challenge.clone(),
    })
    .map_err(|error| ApiError::internal("oauth code", error))?;
    deps.store
        .put_grant(
            GrantKind::Code,
            &hash_opaque_token(&code),
            &payload,
            now,
            now + GrantKind::Code.ttl_seconds(),
        )
        .await?;
    Ok(code)
}

/// Spend a one-time code: the account it stands for, and the provider it came through.
/// The code is spent by the attempt whatever follows, so a wrong verifier cannot be
/// retried against it. A code issued with a challenge needs its verifier.
pub async fn redeem_code<S: OAuthGrantStore + UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    code: &str,
    verifier: Option<&str>,
    now: i64,
) -> Result<(User, String), ApiError> {
    let refused = || ApiError::InvalidGrant;
    if code.len() > 128 {
        return Err(refused());
    }
    let grant: CodeGrant = deps
        .store
        .take_grant(GrantKind::Code, &hash_opaque_token(code), now)
        .await?
        .as_deref()
        .and_then(|payload| serde_json::from_str(payload).ok())
        .ok_or_else(refused)?;
    if let Some(challenge) = grant.app_challenge.as_deref() {
        if !verifier.is_some_and(|verifier| pkce_matches(verifier, challenge)) {
            deps.edge.security_event(
                "oauth_code_verifier_refused",
                json!({ "provider": grant.provider, "user_id": grant.user_id }),
            );
            return Err(refused());
        }
    }
    let user = existing(deps, &grant.user_id, now).await?;
    Ok((user, grant.provider))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::oauth::pkce_challenge;
    use crate::service::block_on;
    use crate::service::testing::World;

    const REDIRECT: &str = "https://app.example/done";

    fn world() -> World {
        World::new(&[
            ("OAUTH_PROVIDERS", "acme"),
            ("OAUTH_ACME_CLIENT_ID", "client"),
            ("OAUTH_ACME_CLIENT_SECRET", "secret"),
            ("OAUTH_ACME_ISSUER", "https://id.acme.example"),
            ("ALLOWED_REDIRECT_URLS", REDIRECT),
        ])
    }

    fn account(subject: &str, email: Option<&str>, verified: Option<bool>) -> ProviderAccount {
        ProviderAccount {
            subject: subject.into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            name_hint: Some("Ann".into()),
        }
    }

    /// A local account with a password, its email verified or not.
    fn local(world: &World, id: &str, email: &str, verified: bool) {
        let mut user = crate::service::test_account(id, &["user"], 1);
        user.email = Some(email.into());
        user.email_verified = verified;
        user.password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA".into();
        world.store.users.borrow_mut().push(user);
    }

    #[test]
    fn a_state_is_spent_once_and_only_with_its_browsers_cookie() {
        let world = world();
        let deps = world.deps();
        let begun = block_on(begin(&deps, "acme", REDIRECT, None, None, 100)).unwrap();
        let pending = block_on(resume(
            &deps,
            "acme",
            Some(&begun.state),
            Some(&begun.cookie),
            101,
        ))
        .unwrap();
        assert_eq!(pending.redirect_to, REDIRECT);
        assert_eq!(pkce_challenge(&pending.verifier), begun.challenge);
        assert_eq!(pending.nonce, begun.nonce);
        // Replayed.
        assert_eq!(
            block_on(resume(
                &deps,
                "acme",
                Some(&begun.state),
                Some(&begun.cookie),
                102
            ))
            .unwrap_err(),
            ApiError::InvalidState
        );
        // Without the cookie, or another browser's: refused, and the state is burned.
        for cookie in [None, Some("another-browser")] {
            let begun = block_on(begin(&deps, "acme", REDIRECT, None, None, 100)).unwrap();
            assert_eq!(
                block_on(resume(&deps, "acme", Some(&begun.state), cookie, 101)).unwrap_err(),
                ApiError::InvalidState
            );
            assert!(block_on(resume(
                &deps,
                "acme",
                Some(&begun.state),
                Some(&begun.cookie),
                101
            ))
            .is_err());
        }
        // Expired after ten minutes; a state of another provider; no state at all.
        let begun = block_on(begin(&deps, "acme", REDIRECT, None, None, 100)).unwrap();
        assert!(block_on(resume(
            &deps,
            "acme",
            Some(&begun.state),
            Some(&begun.cookie),
            700
        ))
        .is_err());
        let begun = block_on(begin(&deps, "acme", REDIRECT, None, None, 100)).unwrap();
        assert!(block_on(resume(
            &deps,
            "other",
            Some(&begun.state),
            Some(&begun.cookie),
            101
        ))
        .is_err());
        assert!(block_on(resume(&deps, "acme", None, Some(&begun.cookie), 101)).is_err());
    }

    #[test]
    fn a_disallowed_redirect_or_a_non_s256_challenge_is_a_400() {
        let world = world();
        let deps = world.deps();
        let refused = block_on(begin(&deps, "acme", "https://evil.example/", None, None, 1));
        assert_eq!(refused.unwrap_err().status(), 400);
        assert_eq!(world.edge.event_names(), ["oauth_redirect_refused"]);
        let challenge = pkce_challenge(&"v".repeat(43));
        for bad in [(challenge.as_str(), Some("plain")), ("short", None)] {
            let refused = block_on(begin(&deps, "acme", REDIRECT, Some(bad), None, 1));
            assert_eq!(refused.unwrap_err().status(), 400);
        }
        assert!(block_on(begin(
            &deps,
            "acme",
            REDIRECT,
            Some((&challenge, Some("S256"))),
            None,
            1
        ))
        .is_ok());
        assert!(
            world.store.grants.borrow().len() == 1,
            "nothing stored for a refusal"
        );
    }

    #[test]
    fn a_new_provider_account_gets_an_account_without_a_password() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("Ann@Example.com"), Some(true)),
            None,
            10,
        ))
        .unwrap();
        assert_eq!(user.username, "ann");
        assert_eq!(user.email.as_deref(), Some("ann@example.com"));
        assert!(user.email_verified);
        assert_eq!(world.store.users.borrow()[0].password_hash, NO_PASSWORD);
        // The next time, the identity signs in to the same account.
        let again = block_on(account_for(
            &deps,
            "acme",
            &account("s1", None, None),
            None,
            20,
        ))
        .unwrap();
        assert_eq!(again.id, user.id);
        assert_eq!(world.store.identities.borrow()[0].last_used_at, 20);
        let actions: Vec<_> = world
            .store
            .audit
            .borrow()
            .iter()
            .map(|entry| entry.action)
            .collect();
        assert_eq!(actions, [AuditAction::Signup, AuditAction::ProviderLogin]);
    }

    #[test]
    fn usernames_are_made_unique() {
        let world = world();
        let deps = world.deps();
        let first = block_on(account_for(
            &deps,
            "acme",
            &account("s1", None, None),
            None,
            1,
        ))
        .unwrap();
        let second = block_on(account_for(
            &deps,
            "acme",
            &account("s2", None, None),
            None,
            1,
        ))
        .unwrap();
        assert_eq!(first.username, "ann");
        assert!(second.username.starts_with("ann_"), "{}", second.username);
    }

    #[test]
    fn a_verified_email_links_to_a_verified_account() {
        let world = world();
        local(
            &world,
            "00000000-0000-4000-8000-000000000001",
            "ann@example.com",
            true,
        );
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("ann@example.com"), Some(true)),
            None,
            10,
        ))
        .unwrap();
        assert_eq!(user.id, "00000000-0000-4000-8000-000000000001");
        assert_eq!(world.store.users.borrow().len(), 1);
        assert_eq!(
            world.store.audit.borrow()[0].action,
            AuditAction::IdentityLinked
        );
    }

    #[test]
    fn an_unverified_local_email_asks_the_user_to_sign_in_and_link() {
        let world = world();
        local(
            &world,
            "00000000-0000-4000-8000-000000000001",
            "ann@example.com",
            false,
        );
        let deps = world.deps();
        let refused = block_on(account_for(
            &deps,
            "acme",
            &account("s1", Some("ann@example.com"), Some(true)),
            None,
            10,
        ));
        assert_eq!(refused.unwrap_err(), ApiError::LinkRequired);
        assert!(world.store.identities.borrow().is_empty());
    }

    #[test]
    fn an_email_the_provider_does_not_vouch_for_makes_a_new_account_without_it() {
        for verified in [None, Some(false)] {
            let world = world();
            local(
                &world,
                "00000000-0000-4000-8000-000000000001",
                "ann@example.com",
                true,
            );
            let deps = world.deps();
            let user = block_on(account_for(
                &deps,
                "acme",
                &account("s1", Some("ann@example.com"), verified),
                None,
                10,
            ))
            .unwrap();
            assert_ne!(user.id, "00000000-0000-4000-8000-000000000001");
            assert_eq!(user.email, None);
        }
    }

    #[test]
    fn linking_adds_the_identity_to_the_callers_account_and_never_steals_one() {
        let world = world();
        let caller = "00000000-0000-4000-8000-000000000001";
        local(&world, caller, "ann@example.com", false);
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", None, None),
            Some(caller),
            10,
        ))
        .unwrap();
        assert_eq!(user.id, caller);
        let other = block_on(account_for(
            &deps,
            "acme",
            &account("s2", None, None),
            None,
            10,
        ))
        .unwrap();
        assert_ne!(other.id, caller);
        let stolen = block_on(account_for(
            &deps,
            "acme",
            &account("s2", None, None),
            Some(caller),
            10,
        ));
        assert_eq!(stolen.unwrap_err(), ApiError::IdentityTaken);
    }

    fn pending(challenge: Option<String>) -> PendingSignIn {
        PendingSignIn {
            provider: "acme".into(),
            redirect_to: REDIRECT.into(),
            nonce: "n".into(),
            verifier: "v".into(),
            app_challenge: challenge,
            link_user: None,
            binding: String::new(),
        }
    }

    #[test]
    fn a_code_is_redeemed_once_within_sixty_seconds() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", None, None),
            None,
            1,
        ))
        .unwrap();
        let code = block_on(issue_code(&deps, &user.id, &pending(None), 100)).unwrap();
        let (redeemed, provider) = block_on(redeem_code(&deps, &code, None, 159)).unwrap();
        assert_eq!(
            (redeemed.id.as_str(), provider.as_str()),
            (user.id.as_str(), "acme")
        );
        assert_eq!(
            block_on(redeem_code(&deps, &code, None, 159)).unwrap_err(),
            ApiError::InvalidGrant
        );
        let late = block_on(issue_code(&deps, &user.id, &pending(None), 100)).unwrap();
        assert_eq!(
            block_on(redeem_code(&deps, &late, None, 160)).unwrap_err(),
            ApiError::InvalidGrant
        );
    }

    #[test]
    fn a_code_issued_with_a_challenge_needs_its_verifier_and_a_wrong_one_spends_it() {
        let world = world();
        let deps = world.deps();
        let user = block_on(account_for(
            &deps,
            "acme",
            &account("s1", None, None),
            None,
            1,
        ))
        .unwrap();
        let verifier = "v".repeat(43);
        let with_challenge = pending(Some(pkce_challenge(&verifier)));
        for wrong in [None, Some("w".repeat(43))] {
            let code = block_on(issue_code(&deps, &user.id, &with_challenge, 100)).unwrap();
            assert_eq!(
                block_on(redeem_code(&deps, &code, wrong.as_deref(), 101)).unwrap_err(),
                ApiError::InvalidGrant
            );
            assert!(block_on(redeem_code(&deps, &code, Some(&verifier), 101)).is_err());
        }
        let code = block_on(issue_code(&deps, &user.id, &with_challenge, 100)).unwrap();
        assert!(block_on(redeem_code(&deps, &code, Some(&verifier), 101)).is_ok());
    }
}
