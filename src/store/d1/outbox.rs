//! The development outbox: messages stored instead of sent, newest first.

use super::Database;
use super::{integer, map_d1_error, optional_text, text};
use crate::domain::email::Message;
use crate::store::error::StoreError;
use crate::store::traits::StoredMessage;

/// Store a message with the token and code it carries (development only: the provider that
/// writes here is refused by the configuration elsewhere).
pub async fn store(
    db: &Database,
    id: &str,
    message: &Message,
    token: Option<&str>,
    code: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    db.prepare(
        "INSERT INTO outbox (id, to_address, subject, text_body, html_body, purpose, token, code, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(&[
        text(id),
        text(&message.to),
        text(&message.subject),
        text(&message.text),
        text(&message.html),
        text(message.purpose.as_str()),
        optional_text(token),
        optional_text(code),
        integer(now),
    ])
    .map_err(map_d1_error)?
    .run()
    .await
    .map_err(map_d1_error)?;
    Ok(())
}

/// Messages to one address, newest first.
pub async fn list(db: &Database, to: &str) -> Result<Vec<StoredMessage>, StoreError> {
    db.prepare(
        "SELECT to_address AS \"to\", subject, text_body AS text, html_body AS html, purpose, \
                token, code, created_at \
         FROM outbox WHERE to_address = ?1 ORDER BY created_at DESC, rowid DESC LIMIT 100",
    )
    .bind(&[text(to)])
    .map_err(map_d1_error)?
    .all()
    .await
    .map_err(map_d1_error)?
    .results::<StoredMessage>()
    .map_err(map_d1_error)
}
