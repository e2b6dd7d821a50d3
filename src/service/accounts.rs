//! Accounts: a user deleting their own, and administrators reading one, deleting it, banning
//! and unbanning it, granting and taking roles. The route table has checked the caller's
//! permission; these flows keep the rules that hold whoever asks: re-authentication before
//! a user's own deletion, no self-deletion, self-ban or self-demotion through the admin
//! API, and the last active admin stays (the store refuses it atomically).

use crate::domain::access::{Role, ROLE_ADMIN};
use crate::domain::audit::{AuditAction, AuditEntry, AuditFilter, AuditRecord, Origin};
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::is_uuid;
use crate::domain::time::rfc3339_seconds;
use crate::domain::user::User;
use crate::error::ApiError;
use crate::store::traits::{AuditStore, Ban, ProfileChange, RoleStore, UserStore};

/// How the caller of a sensitive change proved who they are, beyond their access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauthentication {
    /// The account's password came with the request and was right.
    Password,
    /// Nothing came with the request: only a recent password sign-in of the session counts.
    SessionOnly,
}

/// Whether the caller's session signed in with a password at most `window` seconds ago
/// (0 never counts).
pub fn signed_in_recently(user: &User, now: i64, window: i64) -> bool {
    window > 0
        && user
            .session_signed_in_at
            .is_some_and(|at| now.saturating_sub(at) <= window)
}

/// Delete the caller's own account, with its roles and sessions. Without the password the
/// session must have signed in within `reauth_seconds` (`ReauthenticationRequired`
/// otherwise); the last active admin stays (`LastAdmin`).
pub async fn delete_own<S: UserStore>(
    store: &S,
    user: &User,
    proof: Reauthentication,
    reauth_seconds: i64,
    origin: &Origin,
    now: i64,
) -> Result<(), ApiError> {
    if proof == Reauthentication::SessionOnly && !signed_in_recently(user, now, reauth_seconds) {
        return Err(ApiError::ReauthenticationRequired);
    }
    let entry = AuditEntry::new(AuditAction::UserDeleted, origin.clone(), now)
        .by_self(&user.id)
        .with("username", user.username.as_str());
    store.delete_user(&user.id, &entry).await?;
    Ok(())
}

/// The account an administrator acts on, or `NotFound` (also for a malformed id).
pub async fn find<S: UserStore>(store: &S, user_id: &str) -> Result<User, ApiError> {
    if !is_uuid(user_id) {
        return Err(ApiError::NotFound);
    }
    store.find_user(user_id).await?.ok_or(ApiError::NotFound)
}

fn entry(
    action: AuditAction,
    actor_id: &str,
    target: &User,
    origin: &Origin,
    now: i64,
) -> AuditEntry {
    AuditEntry::new(action, origin.clone(), now)
        .by(actor_id)
        .on(&target.id)
}

/// One page of accounts for an administrator, and how many match in all.
pub async fn list<S: UserStore>(
    store: &S,
    search: Option<&PrefixRange>,
    page: Page,
) -> Result<(Vec<User>, u64), ApiError> {
    Ok(store.list_users(search, page).await?)
}

/// Change `target`'s username, email or email verification, as administrator `actor_id`.
/// The audit entry names the fields that were sent; a change with none writes no entry.
pub async fn update<S: UserStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    change: &ProfileChange<'_>,
    origin: &Origin,
    now: i64,
) -> Result<User, ApiError> {
    let changed: Vec<&str> = [
        ("username", change.username.is_some()),
        ("email", change.email.is_some()),
        ("email_verified", change.email_verified.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, sent)| sent.then_some(name))
    .collect();
    let entry = entry(AuditAction::UserUpdated, actor_id, target, origin, now)
        .with("fields", changed.clone());
    store
        .update_profile(
            &target.id,
            change,
            now,
            (!changed.is_empty()).then_some(&entry),
        )
        .await?
        .ok_or(ApiError::NotFound)
}

/// Every role with its permissions.
pub async fn roles<S: RoleStore>(store: &S) -> Result<Vec<Role>, ApiError> {
    Ok(store.list_roles().await?)
}

/// One page of the audit log, newest first, and how many entries match in all.
pub async fn audit_log<S: AuditStore>(
    store: &S,
    filter: &AuditFilter,
    page: Page,
) -> Result<(Vec<AuditRecord>, u64), ApiError> {
    Ok(store.list_audit(filter, page).await?)
}

/// `SelfActionRefused` with `reason` when an administrator acts on their own account.
fn refuse_own(actor_id: &str, target: &User, reason: &str) -> Result<(), ApiError> {
    if target.id == actor_id {
        Err(ApiError::SelfActionRefused(reason.into()))
    } else {
        Ok(())
    }
}

/// Delete `target`'s account, as administrator `actor_id`.
pub async fn delete<S: UserStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    origin: &Origin,
    now: i64,
) -> Result<(), ApiError> {
    refuse_own(
        actor_id,
        target,
        "You cannot delete your own account here; use DELETE /api/v1/users/me",
    )?;
    let entry = entry(AuditAction::UserDeleted, actor_id, target, origin, now)
        .with("username", target.username.as_str());
    if store.delete_user(&target.id, &entry).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Ban `target` until `until` (or indefinitely), as administrator `actor_id`. Returns the
/// account as it is now and how many sessions the ban ended.
pub async fn ban<S: UserStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    until: Option<i64>,
    reason: Option<&str>,
    origin: &Origin,
    now: i64,
) -> Result<(User, usize), ApiError> {
    refuse_own(actor_id, target, "You cannot ban yourself")?;
    let entry = entry(AuditAction::UserBanned, actor_id, target, origin, now)
        .with("until", until.map(rfc3339_seconds))
        .with("reason", reason.map(str::to_owned));
    let (updated, revoked) = store
        .ban_user(&target.id, &Ban { until, reason }, now, &entry)
        .await?;
    Ok((updated.ok_or(ApiError::NotFound)?, revoked))
}

/// Lift `target`'s ban (harmless when there is none), as administrator `actor_id`.
pub async fn unban<S: UserStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    origin: &Origin,
    now: i64,
) -> Result<User, ApiError> {
    let entry = entry(AuditAction::UserUnbanned, actor_id, target, origin, now);
    store
        .unban_user(&target.id, now, &entry)
        .await?
        .ok_or(ApiError::NotFound)
}

/// Grant `role` to `target`, as administrator `actor_id`. Returns whether it is new, and
/// the account as it is now; an unknown role is a 422 on `role`.
pub async fn grant_role<S: RoleStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    role: &str,
    origin: &Origin,
    now: i64,
) -> Result<(bool, User), ApiError> {
    if !store.role_exists(role).await? {
        return Err(ApiError::invalid("role", "is not a role"));
    }
    let entry = entry(AuditAction::RoleGranted, actor_id, target, origin, now).with("role", role);
    let (granted, updated) = store.grant_role(&target.id, role, now, &entry).await?;
    Ok((granted, updated.ok_or(ApiError::NotFound)?))
}

/// Take `role` from `target`, as administrator `actor_id`: `NotFound` when it is not held.
pub async fn remove_role<S: RoleStore>(
    store: &S,
    actor_id: &str,
    target: &User,
    role: &str,
    origin: &Origin,
    now: i64,
) -> Result<User, ApiError> {
    if !target.roles.iter().any(|held| held == role) {
        return Err(ApiError::NotFound);
    }
    if role == ROLE_ADMIN {
        refuse_own(
            actor_id,
            target,
            "You cannot remove your own admin role; another admin must do it",
        )?;
    }
    let entry = entry(AuditAction::RoleRevoked, actor_id, target, origin, now).with("role", role);
    let (removed, updated) = store.remove_role(&target.id, role, &entry).await?;
    if !removed {
        // Held a moment ago, taken meanwhile by another request.
        return Err(ApiError::NotFound);
    }
    updated.ok_or(ApiError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{block_on, test_account};
    use crate::store::memory::MemoryStore;

    const NOW: i64 = 1_800_000_000;
    const ROOT: &str = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000a1";
    const OTHER_ADMIN: &str = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000a2";
    const MODERATOR: &str = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000b1";
    const PLAIN: &str = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000c1";

    fn account(id: &str, roles: &[&str]) -> User {
        test_account(id, roles, NOW - 1_000)
    }

    /// One admin, a moderator (a role that may ban and delete) and a plain account.
    fn store() -> MemoryStore {
        let store = MemoryStore::default();
        store.users.borrow_mut().extend([
            account(ROOT, &["admin", "user"]),
            account(MODERATOR, &["moderator", "user"]),
            account(PLAIN, &["user"]),
        ]);
        store
            .roles
            .borrow_mut()
            .extend(["admin", "moderator", "user"].map(str::to_owned));
        store
    }

    fn origin() -> Origin {
        Origin::default()
    }

    fn get(store: &MemoryStore, id: &str) -> User {
        block_on(find(store, id)).unwrap()
    }

    #[test]
    fn a_fresh_sign_in_is_recent_until_the_window_ends() {
        let mut user = account(PLAIN, &["user"]);
        user.session_signed_in_at = Some(1_000);
        assert!(signed_in_recently(&user, 1_000, 300));
        assert!(signed_in_recently(&user, 1_300, 300));
        assert!(!signed_in_recently(&user, 1_301, 300));
        assert!(!signed_in_recently(&user, 1_000, 0), "0 always asks");
        user.session_signed_in_at = None;
        assert!(!signed_in_recently(&user, 1_000, 300));
    }

    #[test]
    fn deleting_ones_own_account_needs_the_password_or_a_recent_sign_in() {
        let store = store();
        let mut user = get(&store, PLAIN);
        user.session_signed_in_at = Some(NOW - 301);
        let stale = block_on(delete_own(
            &store,
            &user,
            Reauthentication::SessionOnly,
            300,
            &origin(),
            NOW,
        ));
        assert_eq!(stale, Err(ApiError::ReauthenticationRequired));
        assert!(block_on(find(&store, PLAIN)).is_ok(), "nothing deleted");
        block_on(delete_own(
            &store,
            &user,
            Reauthentication::Password,
            300,
            &origin(),
            NOW,
        ))
        .unwrap();
        assert_eq!(block_on(find(&store, PLAIN)), Err(ApiError::NotFound));
        let audit = store.audit.borrow();
        assert_eq!(audit[0].actor_id.as_deref(), Some(PLAIN));
        assert_eq!(audit[0].target_id.as_deref(), Some(PLAIN));
    }

    #[test]
    fn the_last_admin_cannot_delete_their_own_account_either() {
        let store = store();
        let mut root = get(&store, ROOT);
        root.session_signed_in_at = Some(NOW);
        let refused = block_on(delete_own(
            &store,
            &root,
            Reauthentication::SessionOnly,
            300,
            &origin(),
            NOW,
        ));
        assert_eq!(refused, Err(ApiError::LastAdmin));
    }

    #[test]
    fn an_update_audits_the_fields_sent_and_a_taken_username_changes_nothing() {
        let store = store();
        let plain = get(&store, PLAIN);
        let change = ProfileChange {
            username: Some("renamed"),
            email: Some(Some("new@example.com")),
            email_verified: None,
        };
        let updated = block_on(update(&store, ROOT, &plain, &change, &origin(), NOW)).unwrap();
        assert_eq!(updated.username, "renamed");
        assert!(!updated.email_verified, "a changed email is unverified");
        assert_eq!(updated.updated_at, NOW);
        assert_eq!(
            store.audit.borrow()[0].details["fields"],
            serde_json::json!(["username", "email"])
        );
        let clash = ProfileChange {
            username: Some("user_a1"),
            email: None,
            email_verified: None,
        };
        assert_eq!(
            block_on(update(&store, ROOT, &updated, &clash, &origin(), NOW)),
            Err(ApiError::UsernameTaken)
        );
        assert_eq!(get(&store, PLAIN).username, "renamed");
        let nothing = ProfileChange {
            username: None,
            email: None,
            email_verified: None,
        };
        block_on(update(&store, ROOT, &updated, &nothing, &origin(), NOW)).unwrap();
        assert_eq!(
            store.audit.borrow().len(),
            1,
            "an empty change is not audited"
        );
    }

    #[test]
    fn unknown_and_malformed_ids_are_not_found() {
        let store = store();
        assert_eq!(
            block_on(find(&store, "0a1b2c3d-4e5f-4a6b-8c7d-0000000000ff")),
            Err(ApiError::NotFound)
        );
        assert_eq!(block_on(find(&store, "../etc")), Err(ApiError::NotFound));
    }

    #[test]
    fn nobody_deletes_bans_or_demotes_their_own_account_here() {
        let store = store();
        let root = get(&store, ROOT);
        let refused = [
            block_on(delete(&store, ROOT, &root, &origin(), NOW)).unwrap_err(),
            block_on(ban(&store, ROOT, &root, None, None, &origin(), NOW)).unwrap_err(),
            block_on(remove_role(&store, ROOT, &root, "admin", &origin(), NOW)).unwrap_err(),
        ];
        for error in refused {
            assert_eq!(error.code(), "self_action_refused", "{error:?}");
        }
        assert!(store.audit.borrow().is_empty());
    }

    #[test]
    fn the_last_active_admin_stays_whoever_asks() {
        let store = store();
        let root = get(&store, ROOT);
        let refused = [
            block_on(delete(&store, MODERATOR, &root, &origin(), NOW)).unwrap_err(),
            block_on(ban(
                &store,
                MODERATOR,
                &root,
                None,
                Some("coup"),
                &origin(),
                NOW,
            ))
            .unwrap_err(),
            block_on(ban(
                &store,
                MODERATOR,
                &root,
                Some(NOW + 60),
                None,
                &origin(),
                NOW,
            ))
            .unwrap_err(),
            block_on(remove_role(
                &store,
                MODERATOR,
                &root,
                "admin",
                &origin(),
                NOW,
            ))
            .unwrap_err(),
        ];
        for error in refused {
            assert_eq!(error, ApiError::LastAdmin);
        }
        assert_eq!(get(&store, ROOT).banned_at, None);
        assert!(store.audit.borrow().is_empty());
        // A ban that has already ended leaves the admin active, so it is no threat.
        block_on(ban(
            &store,
            MODERATOR,
            &root,
            Some(NOW - 1),
            None,
            &origin(),
            NOW,
        ))
        .unwrap();
    }

    #[test]
    fn with_a_second_admin_the_first_may_go() {
        let store = store();
        store
            .users
            .borrow_mut()
            .push(account(OTHER_ADMIN, &["admin", "user"]));
        let root = get(&store, ROOT);
        block_on(delete(&store, OTHER_ADMIN, &root, &origin(), NOW)).unwrap();
        assert_eq!(block_on(find(&store, ROOT)), Err(ApiError::NotFound));
        let audit = store.audit.borrow();
        assert_eq!(audit[0].action, AuditAction::UserDeleted);
        assert_eq!(audit[0].actor_id.as_deref(), Some(OTHER_ADMIN));
        assert_eq!(audit[0].details["username"], "user_a1");
    }

    #[test]
    fn a_ban_ends_every_session_and_an_unban_lifts_it() {
        let store = store();
        store.add_session("0a1b2c3d-4e5f-4a6b-8c7d-00000000000a", PLAIN, NOW - 5);
        let plain = get(&store, PLAIN);
        let (banned, ended) = block_on(ban(
            &store,
            ROOT,
            &plain,
            Some(NOW + 3_600),
            Some("spam"),
            &origin(),
            NOW,
        ))
        .unwrap();
        assert_eq!(ended, 1);
        assert!(banned.ban_state(NOW).is_banned());
        assert_eq!(banned.ban_reason.as_deref(), Some("spam"));
        let lifted = block_on(unban(&store, ROOT, &banned, &origin(), NOW + 1)).unwrap();
        assert!(!lifted.ban_state(NOW + 1).is_banned());
        let actions: Vec<AuditAction> = store.audit.borrow().iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [AuditAction::UserBanned, AuditAction::UserUnbanned]
        );
    }

    #[test]
    fn roles_are_granted_once_must_exist_and_must_be_held_to_be_taken() {
        let store = store();
        let plain = get(&store, PLAIN);
        let (new, user) = block_on(grant_role(
            &store,
            ROOT,
            &plain,
            "moderator",
            &origin(),
            NOW,
        ))
        .unwrap();
        assert!(new);
        assert_eq!(user.roles, ["moderator", "user"]);
        let (again, _) =
            block_on(grant_role(&store, ROOT, &user, "moderator", &origin(), NOW)).unwrap();
        assert!(!again, "granting twice changes nothing");
        assert_eq!(
            block_on(grant_role(&store, ROOT, &user, "overlord", &origin(), NOW)),
            Err(ApiError::invalid("role", "is not a role"))
        );
        let user = get(&store, PLAIN);
        let after = block_on(remove_role(
            &store,
            ROOT,
            &user,
            "moderator",
            &origin(),
            NOW,
        ))
        .unwrap();
        assert_eq!(after.roles, ["user"]);
        assert_eq!(
            block_on(remove_role(
                &store,
                ROOT,
                &after,
                "moderator",
                &origin(),
                NOW
            )),
            Err(ApiError::NotFound)
        );
        assert_eq!(store.audit.borrow().len(), 2, "one grant and one removal");
    }
}
