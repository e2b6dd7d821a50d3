//! A GCRA budget kept in a Durable Object's storage, shared by the objects that count: the
//! `RateLimiter` (one per key) and the `SessionGuard` (a session's refresh budget).
//!
//! The state is cached in memory and written on every counted request, so eviction does not
//! reset it. Most keys go idle for good, so an alarm set for the moment the budget is whole
//! again deletes the stored state and an idle key leaves nothing behind. The alarm is armed
//! once, not pushed back on every request (that would cost a storage write each time); when
//! it fires on a key still in use it re-arms itself for the key's current state.

use crate::domain::rate_limit::{gcra, Decision};
use std::cell::Cell;
use worker::{Date, Result, Storage};

/// The alarm offset at which a key's state no longer matters (its TAT has passed), plus a
/// second of slack.
fn forget_after_ms(tat_ms: u64, now_ms: u64) -> i64 {
    i64::try_from(tat_ms.saturating_sub(now_ms)).unwrap_or(i64::MAX / 2) + 1_000
}

/// One budget, stored under `key`.
pub struct StoredBudget {
    key: &'static str,
    /// Cached copy of the stored TAT; `None` until first loaded (or when none is stored).
    tat_ms: Cell<Option<u64>>,
    loaded: Cell<bool>,
    /// Whether this instance has armed the clean-up alarm and it has not fired yet.
    alarm_armed: Cell<bool>,
}

impl StoredBudget {
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            tat_ms: Cell::new(None),
            loaded: Cell::new(false),
            alarm_armed: Cell::new(false),
        }
    }

    /// Count one request against `limit` per `period_ms`.
    pub async fn count(&self, storage: &Storage, limit: u32, period_ms: u64) -> Result<Decision> {
        if !self.loaded.get() {
            self.tat_ms.set(storage.get(self.key).await?);
            self.loaded.set(true);
        }
        let now_ms = Date::now().as_millis();
        let (decision, new_tat) = gcra(self.tat_ms.get(), now_ms, limit, period_ms);
        if decision.allowed {
            self.tat_ms.set(Some(new_tat));
            storage.put(self.key, new_tat).await?;
            if !self.alarm_armed.get() {
                // A fresh instance (new key, or evicted and revived) arms it again: setting an
                // alarm replaces any earlier one, and this one is never earlier than needed.
                storage.set_alarm(forget_after_ms(new_tat, now_ms)).await?;
                self.alarm_armed.set(true);
            }
        }
        Ok(decision)
    }

    /// The clean-up alarm: forget the state once the budget is whole again (a fresh key
    /// behaves the same), or re-arm for a key still in use.
    pub async fn on_alarm(&self, storage: &Storage) -> Result<()> {
        self.alarm_armed.set(false);
        let stored: Option<u64> = storage.get(self.key).await?;
        let now_ms = Date::now().as_millis();
        match stored {
            Some(tat) if tat > now_ms => {
                storage.set_alarm(forget_after_ms(tat, now_ms)).await?;
                self.alarm_armed.set(true);
            }
            _ => {
                storage.delete(self.key).await?;
                self.tat_ms.set(None);
                self.loaded.set(true);
            }
        }
        Ok(())
    }
}
