//! The cron trigger (`[triggers] crons` in `wrangler.toml`): daily housekeeping.
//!
//! Ended sessions and their refresh tokens, expired one-time tokens and audit entries past
//! `AUDIT_RETENTION_DAYS` are deleted; nothing else. The moment of reference is the
//! trigger's scheduled time, so a run is about the instant it was scheduled for, however
//! late it starts. The outcome is one JSON log line; a failure is logged as an error line
//! (the cron handler has no caller to answer).

use crate::domain::audit::retention_cutoff;
use crate::domain::time::rfc3339_seconds;
use crate::env;
use crate::store::backend::Backend;
use crate::store::traits::MaintenanceStore;
use serde_json::json;
use worker::{console_error, console_log, Env};

/// Run the housekeeping for a trigger scheduled at `scheduled_ms` (unix milliseconds).
pub async fn run(env: &Env, cron: &str, scheduled_ms: f64) {
    let now = (scheduled_ms / 1000.0).floor() as i64;
    let config = match env::config(env) {
        Ok(config) => config,
        Err(error) => {
            console_error!(
                "{}",
                json!({"level": "error", "event": "maintenance_failed", "cron": cron,
                       "error": format!("configuration: {error}")})
            );
            return;
        }
    };
    let audit_cutoff = retention_cutoff(now, config.audit_retention_days);
    let outcome = Backend::new(env, config.database)
        .prune(now, audit_cutoff)
        .await;
    match outcome {
        Ok(pruned) => console_log!(
            "{}",
            json!({
                "level": "info",
                "event": "maintenance",
                "cron": cron,
                "scheduled_at": rfc3339_seconds(now),
                "audit_cutoff": audit_cutoff.map(rfc3339_seconds),
                "sessions_purged": pruned.sessions,
                "refresh_tokens_purged": pruned.refresh_tokens,
                "one_time_tokens_purged": pruned.one_time_tokens,
                "audit_entries_purged": pruned.audit_entries,
                "incomplete": pruned.incomplete,
            })
        ),
        Err(error) => console_error!(
            "{}",
            json!({"level": "error", "event": "maintenance_failed", "cron": cron,
                   "error": error.to_string()})
        ),
    }
}
