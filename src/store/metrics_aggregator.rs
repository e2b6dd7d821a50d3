//! Client of the `MetricsAggregator` Durable Object: one global instance.

use crate::domain::metrics::Metrics;
use crate::store::error::StoreError;
use crate::store::reply;
use worker::{Env, Method, Request, RequestInit};

/// The Durable Object binding's name in `wrangler.toml`.
pub const METRICS_BINDING: &str = "METRICS";

/// The name of the one aggregator instance.
pub const INSTANCE: &str = "global";

fn unavailable(error: worker::Error) -> StoreError {
    StoreError::unavailable("Metrics store", error)
}

async fn send(env: &Env, delta: &Metrics, read: bool) -> Result<worker::Response, StoreError> {
    let namespace = env.durable_object(METRICS_BINDING).map_err(unavailable)?;
    let stub = namespace
        .id_from_name(INSTANCE)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let body = serde_json::to_string(delta)
        .map_err(|error| StoreError::unavailable("Metrics store", error))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let url = if read {
        "https://metrics/merge?read"
    } else {
        "https://metrics/merge"
    };
    let request = Request::new_with_init(url, &init).map_err(unavailable)?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(unavailable)?;
    if response.status_code() / 100 != 2 {
        return Err(unavailable(worker::Error::RustError(format!(
            "aggregator answered {}",
            response.status_code()
        ))));
    }
    Ok(response)
}

/// Add a batch of deltas to the totals.
pub async fn push(env: &Env, delta: &Metrics) -> Result<(), StoreError> {
    send(env, delta, false).await.map(|_| ())
}

/// Add a batch of deltas to the totals and read the totals that result.
pub async fn push_and_read(env: &Env, delta: &Metrics) -> Result<Metrics, StoreError> {
    let response = send(env, delta, true).await?;
    // Read as text: see the aggregator's fetch on why not `Response::json`.
    let text = reply::text(response).await.map_err(unavailable)?;
    serde_json::from_str(&text).map_err(|error| unavailable(error.to_string().into()))
}
