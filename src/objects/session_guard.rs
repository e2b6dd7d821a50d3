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

use crate::domain::audit::{AuditAction, AuditEntry, Origin};
use crate::domain::rate_limit::Decision;
use crate::domain::secret::hash_opaque_token;
use crate::domain::session::{encode_refresh_token, SpentToken};
use crate::env;
use crate::error::ApiError;
use crate::objects::budget::StoredBudget;
use crate::runtime::{now_seconds, random_bytes};
use crate::store::sessions::{self, Rotation};
use crate::store::users::UserRow;
use crate::store::{self};
use futures_util::lock::Mutex;
use serde::{Deserialize, Serialize};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// What the Worker asks.
#[derive(Debug, Serialize, Deserialize)]
pub struct RotateRequest {
    pub session_id: String,
    pub presented_hash: String,
    /// The refresh request's origin, for the audit entry of a reuse revocation.
    #[serde(default)]
    pub origin: Origin,
    /// The per-session refresh budget (`RATE_LIMIT_REFRESH`), counted here rather than in a
    /// `RateLimiter` object: this object already sees every refresh of the session, one at a
    /// time, so the count costs no extra round trip.
    pub limit: u32,
    pub period_ms: u64,
}

/// The object's answer: the budget decision, and the rotation's outcome when the budget
/// allowed one.
#[derive(Debug, Serialize, Deserialize)]
pub struct RotateReply {
    pub decision: Decision,
    pub outcome: Option<RotateOutcome>,
}

/// What the object answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RotateOutcome {
    /// The token was live: here is its successor.
    Rotated {
        refresh_token: String,
        user: UserRow,
    },
    /// The token was spent moments ago by a concurrent request: the same successor.
    Replayed {
        refresh_token: String,
        user: UserRow,
    },
    /// The token was spent long ago: the session is now revoked.
    Reused { user_id: Option<String> },
    /// Unknown, expired, or its session is not live.
    Invalid,
}

struct LastRotation {
    presented_hash: String,
    rotated_at: i64,
    successor: String,
    user: UserRow,
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
        let db = store::database(&self.env)?;
        let mut last = self.last.lock().await;
        let now = now_seconds();

        if let Some(previous) = last.as_ref() {
            if previous.presented_hash == request.presented_hash
                && policy.classify_spent(previous.rotated_at, now) == SpentToken::WithinGrace
            {
                // The session may have been revoked since (logout everywhere, password change).
                if !sessions::is_live(&db, &request.session_id, now).await? {
                    return Ok(RotateOutcome::Invalid);
                }
                return Ok(RotateOutcome::Replayed {
                    refresh_token: previous.successor.clone(),
                    user: previous.user.clone(),
                });
            }
        }

        let successor = encode_refresh_token(&request.session_id, &random_bytes::<32>()?);
        let successor_hash = hash_opaque_token(&successor);
        let rotated = sessions::rotate_refresh_token(
            &db,
            &Rotation {
                session_id: &request.session_id,
                presented_hash: &request.presented_hash,
                successor_hash: &successor_hash,
                now,
                idle_ttl_seconds: policy.idle_ttl_seconds,
            },
        )
        .await?;
        if let Some(user) = rotated {
            *last = Some(LastRotation {
                presented_hash: request.presented_hash,
                rotated_at: now,
                successor: successor.clone(),
                user: user.clone(),
            });
            return Ok(RotateOutcome::Rotated {
                refresh_token: successor,
                user,
            });
        }

        let spent_at =
            sessions::token_spent_at(&db, &request.session_id, &request.presented_hash).await?;
        match spent_at {
            Some(Some(used_at)) if policy.classify_spent(used_at, now) == SpentToken::Reused => {
                let owner = sessions::owner(&db, &request.session_id).await?;
                if let Some(owner) = &owner {
                    let reason = "refresh_token_reuse";
                    let entry = AuditEntry::new(AuditAction::SessionRevoked, request.origin, now)
                        .on(owner)
                        .with("session_id", request.session_id.as_str())
                        .with("reason", reason);
                    sessions::revoke(&db, &request.session_id, owner, reason, now, &entry).await?;
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
