//! Sessions: the signed-in user's own (listing them, ending one, logging out here or
//! everywhere), and an administrator's view of another account's.

use crate::domain::audit::{AuditAction, AuditEntry, Origin};
use crate::domain::session::{is_uuid, Session};
use crate::domain::token::VerifiedToken;
use crate::error::ApiError;
use crate::store::traits::{RevocationStore, SessionStore, UserStore};

/// A live session, and whether it is the one the caller's token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    pub session: Session,
    pub current: bool,
}

/// The caller's live sessions, most recently used first.
pub async fn list<S: SessionStore>(
    store: &S,
    caller: &VerifiedToken,
    now: i64,
) -> Result<Vec<ListedSession>, ApiError> {
    Ok(store
        .live_sessions(&caller.claims.sub, now)
        .await?
        .into_iter()
        .map(|session| ListedSession {
            current: session.id == caller.claims.sid,
            session,
        })
        .collect())
}

/// End one of the caller's own sessions. Another user's session, an unknown id, a
/// malformed one and one already ended are all `NotFound` alike, so the answer tells
/// nothing about other accounts. Ending the caller's own current session also refuses its
/// access token at once.
pub async fn revoke_own<S: SessionStore + RevocationStore>(
    store: &S,
    caller: &VerifiedToken,
    session_id: &str,
    origin: &Origin,
    now: i64,
) -> Result<(), ApiError> {
    if !is_uuid(session_id) {
        return Err(ApiError::NotFound);
    }
    let user_id = &caller.claims.sub;
    let entry = AuditEntry::new(AuditAction::SessionRevoked, origin.clone(), now)
        .by_self(user_id)
        .with("session_id", session_id)
        .with("reason", "revoked_by_user");
    if !store
        .revoke_session(session_id, user_id, "revoked_by_user", now, &entry)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    if session_id == caller.claims.sid {
        store
            .revoke_token(&caller.claims.jti, caller.expires_at, now)
            .await?;
    }
    Ok(())
}

/// End the caller's current session and refuse its access token.
pub async fn logout<S: SessionStore + RevocationStore>(
    store: &S,
    caller: &VerifiedToken,
    origin: &Origin,
    now: i64,
) -> Result<(), ApiError> {
    let claims = &caller.claims;
    let entry = AuditEntry::new(AuditAction::Logout, origin.clone(), now)
        .by_self(&claims.sub)
        .with("session_id", claims.sid.as_str());
    store
        .revoke_session(&claims.sid, &claims.sub, "logout", now, &entry)
        .await?;
    store
        .revoke_token(&claims.jti, caller.expires_at, now)
        .await?;
    Ok(())
}

/// End every session of the caller's account and refuse every access token issued before
/// now. Returns how many sessions were live.
pub async fn logout_everywhere<S: SessionStore + RevocationStore>(
    store: &S,
    caller: &VerifiedToken,
    origin: &Origin,
    now: i64,
) -> Result<usize, ApiError> {
    let claims = &caller.claims;
    let entry = AuditEntry::new(AuditAction::SessionsRevokedAll, origin.clone(), now)
        .by_self(&claims.sub)
        .with("reason", "logout_all");
    let revoked = store
        .revoke_all_sessions(&claims.sub, "logout_all", now, &entry)
        .await?;
    store
        .revoke_token(&claims.jti, caller.expires_at, now)
        .await?;
    Ok(revoked)
}

/// The account an administrator acts on, or `NotFound` (also for a malformed id).
async fn target<S: UserStore>(store: &S, user_id: &str) -> Result<String, ApiError> {
    if !is_uuid(user_id) {
        return Err(ApiError::NotFound);
    }
    store
        .find_user(user_id)
        .await?
        .map(|user| user.id)
        .ok_or(ApiError::NotFound)
}

/// An account's live sessions, for an administrator.
pub async fn list_for_admin<S: UserStore + SessionStore>(
    store: &S,
    user_id: &str,
    now: i64,
) -> Result<Vec<Session>, ApiError> {
    let user_id = target(store, user_id).await?;
    Ok(store.live_sessions(&user_id, now).await?)
}

/// End every session of an account, as administrator `actor_id`. Returns how many were live.
pub async fn end_all_for_admin<S: UserStore + SessionStore>(
    store: &S,
    actor_id: &str,
    user_id: &str,
    origin: &Origin,
    now: i64,
) -> Result<usize, ApiError> {
    let user_id = target(store, user_id).await?;
    let entry = AuditEntry::new(AuditAction::SessionsRevokedAll, origin.clone(), now)
        .by(actor_id)
        .on(&user_id)
        .with("reason", "revoked_by_admin");
    Ok(store
        .revoke_all_sessions(&user_id, "revoked_by_admin", now, &entry)
        .await?)
}

/// End one session of an account, as administrator `actor_id`; `NotFound` unless it is a
/// session of that account that is not ended yet.
pub async fn end_one_for_admin<S: UserStore + SessionStore>(
    store: &S,
    actor_id: &str,
    user_id: &str,
    session_id: &str,
    origin: &Origin,
    now: i64,
) -> Result<(), ApiError> {
    let user_id = target(store, user_id).await?;
    if !is_uuid(session_id) {
        return Err(ApiError::NotFound);
    }
    let entry = AuditEntry::new(AuditAction::SessionRevoked, origin.clone(), now)
        .by(actor_id)
        .on(&user_id)
        .with("session_id", session_id)
        .with("reason", "revoked_by_admin");
    if store
        .revoke_session(session_id, &user_id, "revoked_by_admin", now, &entry)
        .await?
    {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::AccessClaims;
    use crate::service::{block_on, test_account};
    use crate::store::memory::MemoryStore;

    const NOW: i64 = 1_800_000_000;
    const ALICE: &str = "0a1b2c3d-4e5f-4a6b-8c7d-000000000001";
    const BOB: &str = "0a1b2c3d-4e5f-4a6b-8c7d-000000000002";
    const HERE: &str = "0a1b2c3d-4e5f-4a6b-8c7d-00000000000a";
    const THERE: &str = "0a1b2c3d-4e5f-4a6b-8c7d-00000000000b";
    const BOBS: &str = "0a1b2c3d-4e5f-4a6b-8c7d-00000000000c";

    fn token(user: &str, session: &str) -> VerifiedToken {
        VerifiedToken {
            claims: AccessClaims {
                iss: "https://auth.example".into(),
                aud: "app".into(),
                sub: user.into(),
                jti: format!("jti-{session}"),
                sid: session.into(),
                roles: vec!["user".into()],
                email_verified: false,
                amr: vec!["pwd".into()],
                aal: "aal1".into(),
            },
            issued_at: NOW - 10,
            expires_at: NOW + 890,
        }
    }

    fn store() -> MemoryStore {
        let store = MemoryStore::default();
        store.users.borrow_mut().extend([
            test_account(ALICE, &["user"], NOW - 1_000),
            test_account(BOB, &["user"], NOW - 1_000),
        ]);
        store.add_session(HERE, ALICE, NOW - 100);
        store.add_session(THERE, ALICE, NOW - 50);
        store.add_session(BOBS, BOB, NOW - 10);
        store
    }

    fn origin() -> Origin {
        Origin {
            request_id: Some("req-1".into()),
            ip: Some("203.0.113.9".into()),
            colo: None,
        }
    }

    #[test]
    fn the_list_holds_only_the_callers_live_sessions_and_marks_the_current_one() {
        let store = store();
        let listed = block_on(list(&store, &token(ALICE, HERE), NOW)).unwrap();
        let ids: Vec<(&str, bool)> = listed
            .iter()
            .map(|item| (item.session.id.as_str(), item.current))
            .collect();
        assert_eq!(ids, [(THERE, false), (HERE, true)]);
    }

    #[test]
    fn ending_another_session_of_ones_own_is_audited_and_keeps_the_token() {
        let store = store();
        block_on(revoke_own(
            &store,
            &token(ALICE, HERE),
            THERE,
            &origin(),
            NOW,
        ))
        .unwrap();
        let sessions = store.sessions.borrow();
        let there = sessions.iter().find(|s| s.session.id == THERE).unwrap();
        assert_eq!(there.revoked_at, Some(NOW));
        assert_eq!(there.revoked_reason.as_deref(), Some("revoked_by_user"));
        let audit = store.audit.borrow();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].action, AuditAction::SessionRevoked);
        assert_eq!(audit[0].actor_id.as_deref(), Some(ALICE));
        assert_eq!(audit[0].origin.request_id.as_deref(), Some("req-1"));
        assert!(store.revoked_tokens.borrow().is_empty());
    }

    #[test]
    fn ending_the_current_session_also_refuses_its_token() {
        let store = store();
        block_on(revoke_own(
            &store,
            &token(ALICE, HERE),
            HERE,
            &origin(),
            NOW,
        ))
        .unwrap();
        assert_eq!(
            store.revoked_tokens.borrow().get(&format!("jti-{HERE}")),
            Some(&(NOW + 890))
        );
    }

    #[test]
    fn another_users_session_an_unknown_id_and_garbage_are_all_not_found() {
        let store = store();
        for id in [
            BOBS,
            "0a1b2c3d-4e5f-4a6b-8c7d-0000000000ff",
            "not-a-uuid",
            "",
        ] {
            let refused = block_on(revoke_own(&store, &token(ALICE, HERE), id, &origin(), NOW));
            assert_eq!(refused, Err(ApiError::NotFound), "{id}");
        }
        assert!(store
            .sessions
            .borrow()
            .iter()
            .all(|s| s.revoked_at.is_none()));
        assert!(store.audit.borrow().is_empty());
    }

    #[test]
    fn a_session_already_ended_is_not_found_the_second_time() {
        let store = store();
        let caller = token(ALICE, HERE);
        block_on(revoke_own(&store, &caller, THERE, &origin(), NOW)).unwrap();
        let again = block_on(revoke_own(&store, &caller, THERE, &origin(), NOW + 1));
        assert_eq!(again, Err(ApiError::NotFound));
        assert_eq!(
            store.audit.borrow().len(),
            1,
            "one entry for one revocation"
        );
    }

    #[test]
    fn logout_ends_this_session_only_and_refuses_its_token() {
        let store = store();
        block_on(logout(&store, &token(ALICE, HERE), &origin(), NOW)).unwrap();
        let sessions = store.sessions.borrow();
        let state = |id: &str| {
            sessions
                .iter()
                .find(|s| s.session.id == id)
                .unwrap()
                .revoked_at
        };
        assert_eq!(state(HERE), Some(NOW));
        assert_eq!(state(THERE), None);
        assert!(store
            .revoked_tokens
            .borrow()
            .contains_key(&format!("jti-{HERE}")));
        assert_eq!(store.audit.borrow()[0].action, AuditAction::Logout);
    }

    #[test]
    fn logging_out_everywhere_ends_every_session_of_the_account_and_no_other() {
        let store = store();
        let ended = block_on(logout_everywhere(
            &store,
            &token(ALICE, HERE),
            &origin(),
            NOW,
        ));
        assert_eq!(ended, Ok(2));
        let sessions = store.sessions.borrow();
        assert!(sessions
            .iter()
            .all(|s| (s.user_id == ALICE) == s.revoked_at.is_some()));
        assert_eq!(store.tokens_valid_after.borrow().get(ALICE), Some(&NOW));
        assert_eq!(
            store.audit.borrow()[0].action,
            AuditAction::SessionsRevokedAll
        );
    }

    #[test]
    fn an_unavailable_store_is_a_503_with_its_cause_kept_for_the_log() {
        let store = store();
        store.unavailable.set(true);
        let error = block_on(logout(&store, &token(ALICE, HERE), &origin(), NOW)).unwrap_err();
        assert_eq!(error.status(), 503);
        assert_eq!(
            error.internal_cause(),
            Some(("Database", "memory store is down"))
        );
    }

    const ADMIN: &str = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000ad";

    #[test]
    fn an_admin_lists_and_ends_another_accounts_sessions_with_both_names_in_the_audit() {
        let store = store();
        let listed = block_on(list_for_admin(&store, ALICE, NOW)).unwrap();
        assert_eq!(listed.len(), 2);
        block_on(end_one_for_admin(
            &store,
            ADMIN,
            ALICE,
            HERE,
            &origin(),
            NOW,
        ))
        .unwrap();
        let ended = block_on(end_all_for_admin(&store, ADMIN, ALICE, &origin(), NOW)).unwrap();
        assert_eq!(ended, 1, "one was left live");
        let audit = store.audit.borrow();
        assert_eq!(audit.len(), 2);
        for entry in audit.iter() {
            assert_eq!(entry.actor_id.as_deref(), Some(ADMIN));
            assert_eq!(entry.target_id.as_deref(), Some(ALICE));
        }
        assert!(store
            .sessions
            .borrow()
            .iter()
            .any(|s| s.user_id == BOB && s.revoked_at.is_none()));
    }

    #[test]
    fn an_admin_gets_not_found_for_an_unknown_account_or_anothers_session() {
        let store = store();
        let nobody = "0a1b2c3d-4e5f-4a6b-8c7d-0000000000ee";
        for user in [nobody, "garbage"] {
            assert_eq!(
                block_on(list_for_admin(&store, user, NOW)),
                Err(ApiError::NotFound)
            );
            assert_eq!(
                block_on(end_all_for_admin(&store, ADMIN, user, &origin(), NOW)),
                Err(ApiError::NotFound)
            );
        }
        assert_eq!(
            block_on(end_one_for_admin(
                &store,
                ADMIN,
                ALICE,
                BOBS,
                &origin(),
                NOW
            )),
            Err(ApiError::NotFound)
        );
        assert!(store.audit.borrow().is_empty());
        assert!(store
            .sessions
            .borrow()
            .iter()
            .all(|s| s.revoked_at.is_none()));
    }
}
