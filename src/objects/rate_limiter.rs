//! `RateLimiter`: one Durable Object per rate-limit key, so counts are exact across isolates
//! and locations and no single object is a global hot spot (keys shard the load).
//!
//! A Durable Object handles one request at a time, so check-and-update is atomic without
//! locks. The GCRA state lives in memory and in the object's storage, and an idle key deletes
//! itself ([`StoredBudget`]).

use crate::objects::budget::StoredBudget;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

#[durable_object]
pub struct RateLimiter {
    state: State,
    budget: StoredBudget,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            budget: StoredBudget::new("tat"),
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
        let decision = self
            .budget
            .count(&self.state.storage(), limit, period_ms)
            .await?;
        Response::from_json(&decision)
    }

    /// Delete the state once the budget is whole again (a fresh key behaves the same).
    async fn alarm(&self) -> Result<Response> {
        self.budget.on_alarm(&self.state.storage()).await?;
        Response::empty()
    }
}
