//! The tables in D1: the only module that names a D1 type or writes SQL for it.
//! [`backend::D1Backend`] implements the storage traits on the Worker's bindings: these tables, and
//! the KV and Durable Object clients beside this module.
//!
//! Every statement binds its parameters; every multi-statement write is one D1 batch, which
//! D1 runs as a single transaction, so a failure leaves nothing half-written.

pub mod audit;
pub mod backend;
pub mod factors;
pub mod identities;
pub mod maintenance;
pub mod one_time_tokens;
pub mod outbox;
pub mod passkeys;
pub mod roles;
pub mod sessions;
pub mod sign_in_methods;
pub mod users;

use crate::store::error::{StoreError, Unique};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

/// The D1 binding's name in `wrangler.toml`.
pub const DATABASE_BINDING: &str = "DB";

/// The D1 database, as the rest of the service holds it: only the store's functions reach
/// inside, so nothing above the store names a D1 type.
pub struct Database(D1Database);

impl std::ops::Deref for Database {
    type Target = D1Database;

    fn deref(&self) -> &D1Database {
        &self.0
    }
}

/// Open the database binding; a missing binding is a dependency outage (503), not a bug
/// the client could fix.
pub fn database(env: &Env) -> Result<Database, StoreError> {
    env.d1(DATABASE_BINDING).map(Database).map_err(|error| {
        StoreError::unavailable("Database", format!("binding {DATABASE_BINDING}: {error}"))
    })
}

/// The message the last-admin triggers abort with.
const LAST_ADMIN_ABORT: &str = "edge_auth:last_admin";

/// Map a D1 failure to an API error: unique-constraint violations become 409s naming the
/// taken field; anything else is the database being unavailable, with D1's message as the
/// internal cause (logged by the edge, never sent).
pub fn map_d1_error(error: worker::Error) -> StoreError {
    let message = error.to_string();
    if message.contains("UNIQUE constraint failed: users.username") {
        return StoreError::Taken(Unique::Username);
    }
    if message.contains("UNIQUE constraint failed: users.email") {
        return StoreError::Taken(Unique::Email);
    }
    // Either of the identities' unique pairs (migrations/0005): a subject linked already,
    // or a second identity of one provider for the account.
    if message.contains("UNIQUE constraint failed: identities.") {
        return StoreError::Taken(Unique::Identity);
    }
    if message.contains("UNIQUE constraint failed: passkeys.credential_id") {
        return StoreError::Taken(Unique::Passkey);
    }
    // Raised by the triggers of migrations/0004_last_admin.sql; the whole batch is undone.
    if message.contains(LAST_ADMIN_ABORT) {
        return StoreError::LastAdmin;
    }
    StoreError::unavailable("Database", message)
}

/// A text parameter.
pub fn text(value: &str) -> JsValue {
    JsValue::from_str(value)
}

/// A nullable text parameter.
pub fn optional_text(value: Option<&str>) -> JsValue {
    value.map_or(JsValue::NULL, JsValue::from_str)
}

/// An integer parameter (unix seconds, counts); exact up to 2^53.
pub fn integer(value: i64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// A nullable integer parameter.
pub fn optional_integer(value: Option<i64>) -> JsValue {
    value.map_or(JsValue::NULL, integer)
}

/// Rows a write statement changed.
pub fn changes(result: &worker::D1Result) -> usize {
    result
        .meta()
        .ok()
        .flatten()
        .and_then(|meta| meta.changes)
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct CountRow {
    total: i64,
}

/// Run a listing: `count` (`SELECT COUNT(*) AS total ...`) and `rows` (one page) in one
/// batch, so the total and the page come from the same snapshot.
pub(crate) async fn count_and_page<T: DeserializeOwned>(
    db: &Database,
    count: D1PreparedStatement,
    rows: D1PreparedStatement,
) -> Result<(Vec<T>, u64), StoreError> {
    let results = db.batch(vec![count, rows]).await.map_err(map_d1_error)?;
    let total = match results.first() {
        Some(result) => result
            .results::<CountRow>()
            .map_err(map_d1_error)?
            .first()
            .map_or(0, |row| row.total),
        None => 0,
    };
    let rows = match results.get(1) {
        Some(result) => result.results::<T>().map_err(map_d1_error)?,
        None => Vec::new(),
    };
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

/// Check that the database answers a trivial query.
pub async fn ping(db: &Database) -> Result<(), StoreError> {
    db.prepare("SELECT 1 AS ok")
        .first::<serde_json::Value>(None)
        .await
        .map_err(map_d1_error)?
        .ok_or_else(|| StoreError::unavailable("Database", "SELECT 1 returned no row"))
        .map(|_| ())
}
