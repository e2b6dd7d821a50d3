//! The HTTP edge: request metadata, body reading, authentication, responses and headers.
//!
//! Everything a request passes through before and after its handler lives here, so every
//! route gets the same limits, headers, error shape and log line.

pub mod auth;
pub mod body;
pub mod context;
pub mod glue;
pub mod guard;
pub mod log;
pub mod request;
pub mod response;
