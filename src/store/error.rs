//! The one error of the store, whatever the backend: a unique value that is taken, the
//! last-admin rule, or a store that did not answer. The edge turns it into an `ApiError`
//! (`From` below); the backend's own error text travels inside as the cause, for the log.

use crate::error::ApiError;
use std::fmt;

/// A value the store keeps unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    Username,
    Email,
    /// A provider subject already linked, or a second identity of one provider.
    Identity,
    /// A passkey's credential id registered already (to this or another account).
    Passkey,
}

/// Every way a store call can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The value belongs to another record; nothing was written.
    Taken(Unique),
    /// The change would leave no active administrator (migrations/0004); nothing was written.
    LastAdmin,
    /// A value the store cannot hold, such as text with a NUL character on PostgreSQL;
    /// nothing was written.
    Unrepresentable,
    /// The store did not answer, or answered what could not be read: `what` names it to the
    /// client, `cause` is its own error text, for the log only.
    Unavailable { what: &'static str, cause: String },
}

impl StoreError {
    /// A store that did not answer: `what` for the client, `cause` for the log.
    pub fn unavailable(what: &'static str, cause: impl fmt::Display) -> Self {
        StoreError::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }

    /// Whether a write failed because the email address belongs to another account.
    pub fn is_email_taken(&self) -> bool {
        matches!(self, StoreError::Taken(Unique::Email))
    }

    /// The backend's own error text, if any (never sent to a client).
    pub fn cause(&self) -> Option<&str> {
        match self {
            StoreError::Unavailable { cause, .. } => Some(cause),
            _ => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Taken(Unique::Username) => f.write_str("username taken"),
            StoreError::Taken(Unique::Email) => f.write_str("email taken"),
            StoreError::Taken(Unique::Identity) => f.write_str("identity taken"),
            StoreError::Taken(Unique::Passkey) => f.write_str("passkey taken"),
            StoreError::LastAdmin => f.write_str("last active admin"),
            StoreError::Unrepresentable => f.write_str("a value the store cannot hold"),
            StoreError::Unavailable { what, cause } => write!(f, "{what} unavailable: {cause}"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Taken(Unique::Username) => ApiError::UsernameTaken,
            StoreError::Taken(Unique::Email) => ApiError::EmailTaken,
            StoreError::Taken(Unique::Identity) => ApiError::IdentityTaken,
            StoreError::Taken(Unique::Passkey) => ApiError::PasskeyTaken,
            StoreError::LastAdmin => ApiError::LastAdmin,
            StoreError::Unrepresentable => ApiError::MalformedRequest(
                "The request holds text with a NUL character, which cannot be stored".into(),
            ),
            StoreError::Unavailable { what, cause } => ApiError::Unavailable { what, cause },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_store_error_becomes_its_api_error() {
        assert_eq!(
            ApiError::from(StoreError::Taken(Unique::Username)),
            ApiError::UsernameTaken
        );
        assert_eq!(
            ApiError::from(StoreError::Taken(Unique::Email)),
            ApiError::EmailTaken
        );
        assert_eq!(ApiError::from(StoreError::LastAdmin), ApiError::LastAdmin);
        let unavailable = ApiError::from(StoreError::unavailable("Database", "D1_ERROR: x"));
        assert_eq!(unavailable.status(), 503);
        assert_eq!(
            unavailable.internal_cause(),
            Some(("Database", "D1_ERROR: x"))
        );
    }
}
