//! The flows of the service, written against the storage traits (`store::traits`): no
//! `worker` types and no HTTP. Handlers read the request, call a flow, and render what it
//! returns; time, ids and the request's origin come in as arguments, so every flow runs in
//! a native unit test against the in-memory store.
//!
//! Sessions are the first flows here; the others still live in their handlers and move over
//! the same way.

pub mod accounts;
pub mod sessions;

/// An account for the flows' tests: named after the last two characters of its id,
/// verified, created `created_at`, holding `roles`.
#[cfg(test)]
pub(crate) fn test_account(id: &str, roles: &[&str], created_at: i64) -> crate::domain::user::User {
    crate::domain::user::User {
        id: id.into(),
        username: format!("user_{}", &id[id.len() - 2..]),
        email: None,
        email_verified: true,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        created_at,
        updated_at: created_at,
        banned_at: None,
        banned_until: None,
        ban_reason: None,
        password_hash: String::new(),
        session_signed_in_at: None,
    }
}

/// Run a future to completion on the test thread. The in-memory store never waits, so a
/// future is ready after a poll or a few.
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}
