//! The tables in PostgreSQL, reached through a Cloudflare Hyperdrive binding with
//! `tokio-postgres` over the Worker's TCP socket: the only module that names a PostgreSQL
//! type. [`backend::PgBackend`] implements the storage traits on it (and on the KV and
//! Durable Object clients beside this module, as the D1 backend does).
//!
//! Hyperdrive pools connections in transaction mode, which shapes everything here:
//! - every statement is unnamed (`query_typed`): a named prepared statement would outlive
//!   the transaction that prepared it on a connection the pool hands to someone else;
//! - no session state (`SET`, temporary tables) is relied on across statements;
//! - a write of several statements is one explicit transaction ([`Connection::transaction`]);
//! - a statement that is safe to repeat (a read) is retried once on a fresh connection when
//!   the first one broke or spoke out of turn (not when the database refused it); a write
//!   never is, since it may have landed.
//!
//! Unique violations are told apart by SQLSTATE 23505 and the constraint's name; the
//! last-admin rule by the SQLSTATE its trigger raises. Never by message text.

pub mod backend;

use crate::config::HYPERDRIVE_BINDING;
use crate::store::error::{StoreError, Unique};
use std::cell::RefCell;
use std::rc::Rc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};
use worker::Env;

/// The SQLSTATE the last-admin triggers raise (migrations/postgres).
const LAST_ADMIN_SQLSTATE: &str = "EA001";

/// What a failure names to the client.
const WHAT: &str = "Database";

/// A statement parameter with its type, as `query_typed` takes it.
pub type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Map a PostgreSQL failure: a unique violation names the taken field by its constraint,
/// the last-admin trigger is `LastAdmin`, anything else is the database being unavailable
/// with the driver's text as the internal cause.
pub fn map_error(error: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        if db.code() == &SqlState::UNIQUE_VIOLATION {
            match db.constraint() {
                Some("users_username_key") => return StoreError::Taken(Unique::Username),
                Some("users_email_key") => return StoreError::Taken(Unique::Email),
                Some("identities_provider_subject_key" | "identities_user_provider_key") => {
                    return StoreError::Taken(Unique::Identity)
                }
                Some("passkeys_credential_id_key") => return StoreError::Taken(Unique::Passkey),
                _ => {}
            }
        }
        if db.code().code() == LAST_ADMIN_SQLSTATE {
            return StoreError::LastAdmin;
        }
        // PostgreSQL text cannot hold NUL (D1's can): the request's input, not an outage.
        if db.code() == &SqlState::CHARACTER_NOT_IN_REPERTOIRE
            || db.code() == &SqlState::UNTRANSLATABLE_CHARACTER
        {
            return StoreError::Unrepresentable;
        }
    }
    StoreError::unavailable(WHAT, error)
}

/// One request's connection, opened on first use.
pub struct Connection<'a> {
    env: &'a Env,
    client: RefCell<Option<Rc<Client>>>,
}

impl<'a> Connection<'a> {
    pub fn new(env: &'a Env) -> Self {
        Self {
            env,
            client: RefCell::new(None),
        }
    }

    /// The open connection, or a new one through the Hyperdrive binding.
    async fn client(&self) -> Result<Rc<Client>, StoreError> {
        if let Some(client) = self.client.borrow().as_ref() {
            if !client.is_closed() {
                return Ok(Rc::clone(client));
            }
        }
        let hyperdrive = self.env.hyperdrive(HYPERDRIVE_BINDING).map_err(|error| {
            StoreError::unavailable(WHAT, format!("binding {HYPERDRIVE_BINDING}: {error}"))
        })?;
        let socket = hyperdrive
            .connect()
            .map_err(|error| StoreError::unavailable(WHAT, error))?;
        let mut config = hyperdrive
            .connection_string()
            .parse::<tokio_postgres::Config>()
            .map_err(|error| StoreError::unavailable(WHAT, error))?;
        // The binding's socket reaches Hyperdrive, which holds the TLS to the origin.
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, connection) = config
            .connect_raw(socket, NoTls)
            .await
            .map_err(|error| map_error(&error))?;
        // The connection's I/O runs beside the request; when it ends with an error, the
        // client's next call fails and reports it.
        wasm_bindgen_futures::spawn_local(async move {
            let _ = connection.await;
        });
        let client = Rc::new(client);
        *self.client.borrow_mut() = Some(Rc::clone(&client));
        Ok(client)
    }

    /// Rows of a read, retried once on a fresh connection when the first one broke.
    pub async fn read(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        match client.query_typed(sql, params).await {
            // A connection-level failure (closed, or a protocol message out of place, which
            // Hyperdrive's pooler has been seen to cause: workers-sdk#13797), not an answer
            // of the database: a read is safe to repeat, once, on a fresh connection.
            Err(error) if error.is_closed() || error.as_db_error().is_none() => {
                *self.client.borrow_mut() = None;
                let client = self.client().await?;
                client
                    .query_typed(sql, params)
                    .await
                    .map_err(|error| map_error(&error))
            }
            result => result.map_err(|error| map_error(&error)),
        }
    }

    /// The first row of a read, if any.
    pub async fn read_one(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.read(sql, params).await?.into_iter().next())
    }

    /// Run `work` in one transaction: committed when it returns `Ok`, rolled back
    /// otherwise. Never retried: a write may have landed before its connection broke.
    pub async fn transaction<T>(
        &self,
        work: impl AsyncFnOnce(&Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let client = self.client().await?;
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|error| map_error(&error))?;
        let transaction = Transaction { client };
        match work(&transaction).await {
            Ok(value) => {
                transaction
                    .client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(|error| map_error(&error))?;
                Ok(value)
            }
            Err(error) => {
                // A failed statement has already aborted the transaction; the rollback
                // ends it so the connection can be used again.
                let _ = transaction.client.batch_execute("ROLLBACK").await;
                Err(error)
            }
        }
    }
}

/// A transaction in progress (see [`Connection::transaction`]).
pub struct Transaction {
    client: Rc<Client>,
}

impl Transaction {
    /// Rows of a statement.
    pub async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        self.client
            .query_typed(sql, params)
            .await
            .map_err(|error| map_error(&error))
    }

    /// Rows a statement changed.
    pub async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        self.client
            .execute_typed(sql, params)
            .await
            .map_err(|error| map_error(&error))
    }
}
