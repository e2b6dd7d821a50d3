//! `RateLimiter`: one Durable Object per rate-limit key, so counts are exact across isolates
//! and locations and no single object is a global hot spot (keys shard the load).
//!
//! The object holds the key's GCRA state in memory and in its storage; a Durable Object
//! handles one request at a time, so check-and-update is atomic without locks.

use crate::domain::rate_limit::gcra;
use std::cell::Cell;
use worker::{durable_object, Date, DurableObject, Env, Request, Response, Result, State};

const STATE_KEY: &str = "tat";

#[durable_object]
pub struct RateLimiter {
    state: State,
    /// Cached copy of the stored TAT; `None` until first loaded.
    tat_ms: Cell<Option<u64>>,
    loaded: Cell<bool>,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            tat_ms: Cell::new(None),
            loaded: Cell::new(false),
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
            self.state.storage().put(STATE_KEY, new_tat).await?;
        }
        Response::from_json(&decision)
    }
}
