//! `MetricsAggregator`: the one Durable Object (named [`INSTANCE`]) that holds the service's
//! metric totals, so `/metrics` is the same whichever isolate or location answers it.
//!
//! Isolates do not call it per request: each sends its batch of deltas every
//! `METRICS_FLUSH_SECONDS` at most, and a scrape sends its own isolate's batch before it
//! reads. One global object therefore sees a few requests per isolate per interval, not the
//! request rate. The totals are one JSON value in the object's storage (a few tens of KiB:
//! series are bounded by routes x statuses and rate-limit scopes), written on every merge, so
//! they survive eviction and restarts; memory holds a copy to skip the read.
//!
//! [`INSTANCE`]: crate::store::metrics_aggregator::INSTANCE

use crate::domain::metrics::Metrics;
use futures_util::lock::Mutex;
use worker::{durable_object, DurableObject, Env, Headers, Request, Response, Result, State};

const TOTALS_KEY: &str = "totals";

fn json_headers() -> Headers {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    headers
}

#[durable_object]
pub struct MetricsAggregator {
    state: State,
    /// The stored totals once loaded. Held across load, merge and write, so merges apply one
    /// at a time and memory never runs ahead of storage.
    totals: Mutex<Option<Metrics>>,
}

impl MetricsAggregator {
    async fn load(&self) -> Result<Metrics> {
        let stored: Option<String> = self.state.storage().get(TOTALS_KEY).await?;
        // Totals that no longer parse are a bug to report, not to paper over with zeros
        // that the next write would make permanent.
        stored.map_or_else(
            || Ok(Metrics::default()),
            |text| serde_json::from_str(&text).map_err(|error| error.to_string().into()),
        )
    }

    async fn merge(&self, delta: &Metrics) -> Result<Metrics> {
        let mut totals = self.totals.lock().await;
        let current = match totals.take() {
            Some(current) => current,
            None => self.load().await?,
        };
        if delta.is_empty() {
            *totals = Some(current.clone());
            return Ok(current);
        }
        let mut next = current.clone();
        next.merge(delta);
        let text = serde_json::to_string(&next).map_err(|error| error.to_string())?;
        match self.state.storage().put(TOTALS_KEY, text).await {
            Ok(()) => {
                *totals = Some(next.clone());
                Ok(next)
            }
            Err(error) => {
                // Not stored: the caller keeps the delta and sends it again later.
                *totals = Some(current);
                Err(error)
            }
        }
    }
}

impl DurableObject for MetricsAggregator {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            totals: Mutex::new(None),
        }
    }

    /// `POST /merge` with a [`Metrics`] delta -> 204 once it is stored; with `?read`, 200 and
    /// the totals after the merge. An empty delta reads without writing.
    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let read = req.url()?.query_pairs().any(|(name, _)| name == "read");
        // serde_json, not `Request::json`: histogram buckets are keyed by integers, which
        // JSON carries as strings and serde_json (unlike serde-wasm-bindgen) reads back.
        let Ok(delta) = serde_json::from_str::<Metrics>(&req.text().await?) else {
            return Response::error("bad request", 400);
        };
        let totals = self.merge(&delta).await?;
        if read {
            let text = serde_json::to_string(&totals).map_err(|error| error.to_string())?;
            Ok(Response::ok(text)?.with_headers(json_headers()))
        } else {
            Ok(Response::empty()?.with_status(204))
        }
    }
}
