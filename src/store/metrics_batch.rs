//! This isolate's batch of metric deltas and its trips to the aggregator.
//!
//! Requests only touch memory: counts go into a per-isolate batch (isolates are
//! single-threaded, so a `thread_local` is the isolate's). After a response, when the oldest
//! pending count is `METRICS_FLUSH_SECONDS` old, the batch goes to the `MetricsAggregator`
//! inside `wait_until`, after the user has the answer. A flush that fails puts its counts
//! back for the next attempt and never touches the user's request. Counts an isolate holds
//! when it is evicted are lost: at most one interval of that isolate's traffic.

use crate::domain::metrics::{Batch, Event, Metrics};
use crate::store;
use crate::store::error::StoreError;
use std::cell::RefCell;
use worker::{Context, Date, Env};

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Count an event in this isolate's batch.
pub fn record(event: Event<'_>) {
    BATCH.with(|batch| batch.borrow_mut().record(event, now_ms()));
}

/// Count an answered request and its latency in this isolate's batch.
pub fn observe_request(route: &str, status: u16, duration_ms: u64) {
    BATCH.with(|batch| {
        batch
            .borrow_mut()
            .observe_request(route, status, duration_ms, now_ms())
    });
}

fn restore(counts: &Metrics) {
    BATCH.with(|batch| batch.borrow_mut().restore(counts, now_ms()));
}

/// When the batch is due, send it to the aggregator after the response. A failure puts the
/// counts back and is handed to `on_failure` (the edge logs it under the id of the request
/// whose response triggered the flush).
pub fn flush_if_due(
    env: &Env,
    worker: &Context,
    interval_seconds: u32,
    on_failure: impl FnOnce(StoreError) + 'static,
) {
    let interval_ms = u64::from(interval_seconds) * 1000;
    let Some(delta) = BATCH.with(|batch| batch.borrow_mut().take_if_due(now_ms(), interval_ms))
    else {
        return;
    };
    let env = env.clone();
    worker.wait_until(async move {
        if let Err(error) = store::metrics_aggregator::push(&env, &delta).await {
            restore(&delta);
            on_failure(error);
        }
    });
}

/// Send everything pending now and read the totals (a scrape sees its own isolate's counts
/// exactly). On failure the counts go back into the batch.
pub async fn flush_and_read(env: &Env) -> Result<Metrics, StoreError> {
    let delta = BATCH.with(|batch| batch.borrow_mut().take());
    store::metrics_aggregator::push_and_read(env, &delta)
        .await
        .inspect_err(|_| restore(&delta))
}
