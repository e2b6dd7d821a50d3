//! Housekeeping run by the cron trigger: purge what has ended and what is past retention.
//!
//! Deletes go in bounded chunks (`id IN (SELECT ... LIMIT n)`): one statement never has to
//! delete a year of rows at once, and a run stops after a fixed number of rounds, leaving
//! the rest to the next day rather than running into D1's limits.

use super::Database;
use super::{changes, integer, map_d1_error};
use crate::store::error::StoreError;
use crate::store::traits::Pruned;
use worker::D1PreparedStatement;

/// Rows one statement deletes at most.
const CHUNK: i64 = 1_000;
/// Rounds of chunks one run goes through at most.
const MAX_ROUNDS: usize = 50;

/// SQL: session `s` has ended at `?1` — revoked, or past its idle or absolute expiry.
/// Neither its access tokens (checked against the live session) nor its refresh tokens
/// can be used again, so its rows serve nothing.
const ENDED_SESSION: &str =
    "s.revoked_at IS NOT NULL OR s.idle_expires_at <= ?1 OR s.absolute_expires_at <= ?1";

fn ended_sessions_refresh_tokens(
    db: &Database,
    now: i64,
) -> Result<D1PreparedStatement, StoreError> {
    db.prepare(format!(
        "DELETE FROM refresh_tokens WHERE rowid IN (SELECT rt.rowid FROM refresh_tokens rt \
           JOIN sessions s ON s.id = rt.session_id WHERE {ENDED_SESSION} LIMIT ?2)"
    ))
    .bind(&[integer(now), integer(CHUNK)])
    .map_err(map_d1_error)
}

/// Sessions that have ended and have no refresh token left (the statement before removes
/// those, chunk by chunk, so a session goes only after all of its tokens).
fn ended_sessions(db: &Database, now: i64) -> Result<D1PreparedStatement, StoreError> {
    db.prepare(format!(
        "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s WHERE ({ENDED_SESSION}) \
           AND NOT EXISTS (SELECT 1 FROM refresh_tokens rt WHERE rt.session_id = s.id) \
           LIMIT ?2)"
    ))
    .bind(&[integer(now), integer(CHUNK)])
    .map_err(map_d1_error)
}

fn old_audit_entries(db: &Database, cutoff: i64) -> Result<D1PreparedStatement, StoreError> {
    db.prepare(
        "DELETE FROM audit_log WHERE id IN \
           (SELECT id FROM audit_log WHERE occurred_at < ?1 ORDER BY id LIMIT ?2)",
    )
    .bind(&[integer(cutoff), integer(CHUNK)])
    .map_err(map_d1_error)
}

/// One-time tokens (verification, reset, email change) that have expired: spent or not,
/// they can no longer be used.
fn expired_one_time_tokens(
    db: &Database,
    now: i64,
) -> Result<Option<D1PreparedStatement>, StoreError> {
    db.prepare(
        "DELETE FROM one_time_tokens WHERE rowid IN \
           (SELECT rowid FROM one_time_tokens WHERE expires_at <= ?1 LIMIT ?2)",
    )
    .bind(&[integer(now), integer(CHUNK)])
    .map_err(map_d1_error)
    .map(Some)
}

/// Purge ended sessions with their refresh tokens, expired one-time tokens, and audit
/// entries older than `audit_cutoff` (`None`: keep them all). Nothing else is touched:
/// accounts, live sessions and their tokens, recent audit entries stay.
pub async fn prune(
    db: &Database,
    now: i64,
    audit_cutoff: Option<i64>,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    for _ in 0..MAX_ROUNDS {
        // Refresh tokens first: the sessions statement then sees, in the same transaction,
        // which ended sessions have none left.
        let mut statements = vec![
            ended_sessions_refresh_tokens(db, now)?,
            ended_sessions(db, now)?,
        ];
        let audit_index = match audit_cutoff {
            Some(cutoff) => {
                statements.push(old_audit_entries(db, cutoff)?);
                Some(statements.len() - 1)
            }
            None => None,
        };
        let one_time_index = match expired_one_time_tokens(db, now)? {
            Some(statement) => {
                statements.push(statement);
                Some(statements.len() - 1)
            }
            None => None,
        };
        let results = db.batch(statements).await.map_err(map_d1_error)?;
        let deleted = |index: Option<usize>| {
            index
                .and_then(|index| results.get(index))
                .map(changes)
                .unwrap_or(0)
        };
        let round = [
            deleted(Some(0)),
            deleted(Some(1)),
            deleted(audit_index),
            deleted(one_time_index),
        ];
        pruned.refresh_tokens += round[0];
        pruned.sessions += round[1];
        pruned.audit_entries += round[2];
        pruned.one_time_tokens += round[3];
        // Only a full chunk can leave rows behind.
        pruned.incomplete = round.iter().any(|&n| n as i64 >= CHUNK);
        if !pruned.incomplete {
            break;
        }
    }
    Ok(pruned)
}
