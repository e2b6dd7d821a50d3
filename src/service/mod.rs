//! The flows of the service, written against the storage traits (`store::traits`): no
//! `worker` types and no HTTP. Handlers read the request, call a flow, and render what it
//! returns; time, ids and the request's origin come in as arguments, so every flow runs in
//! a native unit test against the in-memory store.
//!
//! Sessions are the first flows here; the others still live in their handlers and move over
//! the same way.

pub mod accounts;
pub mod sessions;

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
