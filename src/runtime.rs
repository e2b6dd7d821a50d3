//! What the platform provides to handlers and Durable Objects alike: the clock and the CSPRNG.
//! Domain code never calls these; it receives their results as arguments.

use crate::error::ApiError;
use worker::Date;

/// Current time in unix seconds.
pub fn now_seconds() -> i64 {
    i64::try_from(Date::now().as_millis() / 1000).unwrap_or(i64::MAX)
}

/// Bytes from the platform CSPRNG (WebCrypto `getRandomValues` in workerd).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0_u8; N];
    getrandom::getrandom(&mut bytes).map_err(|_| ApiError::Internal)?;
    Ok(bytes)
}
