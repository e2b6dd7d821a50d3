//! `RateLimiter`: one Durable Object per rate-limit key, so counts are exact across isolates
//! and locations and no single object is a global hot spot (keys shard the load).
//!
//! The object holds the key's GCRA state in memory and in its storage; a Durable Object
//! handles one request at a time, so check-and-update is atomic without locks. Keys are per
//! client, so most objects go idle for good: an alarm set for the moment the budget is whole
//! again deletes the stored state, and an idle key leaves nothing behind. The alarm is armed
//! once, not pushed back on every request (that would cost a storage write each time); when
//! it fires on a key still in use it re-arms itself for the key's current state.

use crate::domain::rate_limit::gcra;
use std::cell::Cell;
use worker::{durable_object, Date, DurableObject, Env, Request, Response, Result, State};

const STATE_KEY: &str = "tat";

/// The alarm offset at which a key's state no longer matters (its TAT has passed), plus a
/// second of slack.
fn forget_after_ms(tat_ms: u64, now_ms: u64) -> i64 {
    i64::try_from(tat_ms.saturating_sub(now_ms)).unwrap_or(i64::MAX / 2) + 1_000
}

#[durable_object]
pub struct RateLimiter {
    state: State,
    /// Cached copy of the stored TAT; `None` until first loaded.
    tat_ms: Cell<Option<u64>>,
    loaded: Cell<bool>,
    /// Whether this instance has armed the clean-up alarm and it has not fired yet.
    alarm_armed: Cell<bool>,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            tat_ms: Cell::new(None),
            loaded: Cell::new(false),
            alarm_armed: Cell::new(false),
        }
    }

    /// `POST /check?limit=N&period_ms=M` -> the decision as JSON.
    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let mut limit = 0_u32;
        let mut period_ms = 0_u64;
        for (name, value) in url.query_pairs() {
            match name.as_ref() {
                "limit" => limit = value.parse().unwrap_or(0),
                "period_ms" => period_ms = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        if limit == 0 || period_ms == 0 {
            return Response::error("limit and period_ms are required", 400);
        }
        if !self.loaded.get() {
            let stored: Option<u64> = self.state.storage().get(STATE_KEY).await?;
            self.tat_ms.set(stored);
            self.loaded.set(true);
        }
        let now_ms = Date::now().as_millis();
        let (decision, new_tat) = gcra(self.tat_ms.get(), now_ms, limit, period_ms);
        if decision.allowed {
            self.tat_ms.set(Some(new_tat));
            let storage = self.state.storage();
            storage.put(STATE_KEY, new_tat).await?;
            if !self.alarm_armed.get() {
                // A fresh instance (new key, or evicted and revived) arms it again: setting an
                // alarm replaces any earlier one, and this one is never earlier than needed.
                storage.set_alarm(forget_after_ms(new_tat, now_ms)).await?;
                self.alarm_armed.set(true);
            }
        }
        Response::from_json(&decision)
    }

    /// Delete the state once the budget is whole again (a fresh key behaves the same).
    async fn alarm(&self) -> Result<Response> {
        self.alarm_armed.set(false);
        let storage = self.state.storage();
        let stored: Option<u64> = storage.get(STATE_KEY).await?;
        let now_ms = Date::now().as_millis();
        match stored {
            Some(tat) if tat > now_ms => {
                storage.set_alarm(forget_after_ms(tat, now_ms)).await?;
                self.alarm_armed.set(true);
            }
            _ => {
                storage.delete_all().await?;
                self.tat_ms.set(None);
                self.loaded.set(true);
            }
        }
        Response::empty()
    }
}
