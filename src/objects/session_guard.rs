//! `SessionGuard`: one Durable Object per session, the single writer of its refresh chain.
//!
//! D1 alone cannot make concurrent refreshes safe: of N simultaneous uses of one token, one
//! rotates and N-1 would see a spent token and log the user out (or, with a read-then-write,
//! fork the chain). Routing every refresh of a session through one object serialises them;
//! the object remembers its last rotation for the grace window and answers a repeat of the
//! token it just spent with the same successor. One live chain, nobody logged out.
//!
//! The successor's plaintext lives only in this object's memory, for the grace window; D1
//! keeps digests only. If the object is evicted inside that window, a repeat gets a plain 401
//! (never a revocation), and the client that holds the successor carries on.

use crate::domain::audit::{AuditAction, AuditEntry};
use crate::domain::mfa::SessionLevel;
use crate::domain::secret::hash_opaque_token;
use crate::domain::session::{encode_refresh_token, SpentToken};
use crate::domain::user::User;
use crate::env;
use crate::error::ApiError;
use crate::objects::budget::StoredBudget;
use crate::runtime::{now_seconds, random_bytes};
use crate::store::backend::Backend;
use crate::store::session_guard::RotateRequest;
use crate::store::traits::{
    RefreshTokenStore, RotateOutcome, RotateReply, RotatedSession, Rotation, SessionStore,
};
use futures_util::lock::Mutex;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

struct LastRotation {
    presented_hash: String,
    rotated_at: i64,
    successor: String,
    user: User,
    /// The session's level as the rotation read it, so a replay's access token carries
    /// the same `aal`/`amr` as the original's.
    level: SessionLevel,
}

#[durable_object]
pub struct SessionGuard {
    state: State,
    env: Env,
    /// The session's refresh budget, stored so eviction does not reset it.
    budget: StoredBudget,
    /// Held across the whole rotation, so requests for this session run one at a time even
    /// while one of them waits on D1.
    last: Mutex<Option<LastRotation>>,
}

impl SessionGuard {
    async fn rotate(&self, request: RotateRequest) -> std::result::Result<RotateOutcome, ApiError> {
        let config = env::config(&self.env).map_err(|_| ApiError::Misconfigured)?;
        let policy = config.sessions;
        let store = Backend::new(&self.env, config.database);
        let mut last = self.last.lock().await;
        let now = now_seconds();

        if let Some(previous) = last.as_ref() {
            if previous.presented_hash == request.presented_hash
                && policy.classify_spent(previous.rotated_at, now) == SpentToken::WithinGrace
            {
                // The session may have been revoked since (logout everywhere, password change).
                if !store.session_is_live(&request.session_id, now).await? {
                    return Ok(RotateOutcome::Invalid);
                }
                return Ok(RotateOutcome::Replayed {
                    refresh_token: previous.successor.clone(),
                    user: previous.user.clone(),
                    level: previous.level.clone(),
                });
            }
        }

        let successor = encode_refresh_token(&request.session_id, &random_bytes::<32>()?);
        let successor_hash = hash_opaque_token(&successor);
        let rotated = store
            .rotate_refresh_token(&Rotation {
                session_id: &request.session_id,
                presented_hash: &request.presented_hash,
                successor_hash: &successor_hash,
                now,
                idle_ttl_seconds: policy.idle_ttl_seconds,
            })
            .await?;
        if let Some(RotatedSession { user, level }) = rotated {
            *last = Some(LastRotation {
                presented_hash: request.presented_hash,
                rotated_at: now,
                successor: successor.clone(),
                user: user.clone(),
                level: level.clone(),
            });
            return Ok(RotateOutcome::Rotated {
                refresh_token: successor,
                user,
                level,
            });
        }

        let spent_at = store
            .refresh_token_spent_at(&request.session_id, &request.presented_hash)
            .await?;
        match spent_at {
            Some(Some(used_at)) if policy.classify_spent(used_at, now) == SpentToken::Reused => {
                let owner = store.session_owner(&request.session_id).await?;
                if let Some(owner) = &owner {
                    let reason = "refresh_token_reuse";
                    let entry = AuditEntry::new(AuditAction::SessionRevoked, request.origin, now)
                        .on(owner)
                        .with("session_id", request.session_id.as_str())
                        .with("reason", reason);
                    store
                        .revoke_session(&request.session_id, owner, reason, now, &entry)
                        .await?;
                }
                *last = None;
                Ok(RotateOutcome::Reused { user_id: owner })
            }
            _ => Ok(RotateOutcome::Invalid),
        }
    }
}

impl DurableObject for SessionGuard {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            budget: StoredBudget::new("refresh_tat"),
            last: Mutex::new(None),
        }
    }

    /// `POST /rotate` with a [`RotateRequest`] -> a [`RotateReply`]; 503 when D1 fails.
    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(request) = req.json::<RotateRequest>().await else {
            return Response::error("bad request", 400);
        };
        if request.limit == 0 || request.period_ms == 0 {
            return Response::error("limit and period_ms are required", 400);
        }
        let decision = self
            .budget
            .count(&self.state.storage(), request.limit, request.period_ms)
            .await?;
        if !decision.allowed {
            return Response::from_json(&RotateReply {
                decision,
                outcome: None,
            });
        }
        match self.rotate(request).await {
            Ok(outcome) => Response::from_json(&RotateReply {
                decision,
                outcome: Some(outcome),
            }),
            Err(error) => Response::error(error.detail(), error.status()),
        }
    }

    /// Forget the refresh budget once it is whole again, so an idle session's object keeps
    /// nothing in storage.
    async fn alarm(&self) -> Result<Response> {
        self.budget.on_alarm(&self.state.storage()).await?;
        Response::empty()
    }
}
