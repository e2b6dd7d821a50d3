//! Client of sign-in providers' HTTP endpoints (discovery, JWKS, token endpoint, GitHub's
//! API), as the Worker reaches them: one `fetch`, redirects not followed (a token request
//! holds a code and perhaps the client secret, and must reach the endpoint it was meant
//! for), abandoned after [`TIMEOUT_MS`], and an answer larger than [`MAX_BODY_BYTES`]
//! refused. Error texts never hold the request's headers or body.

use futures_util::future::{select, Either};
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{
    AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// How long a provider may take to answer one request.
pub const TIMEOUT_MS: u64 = 5_000;

/// The largest answer read: discovery documents and key sets are a few kilobytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Send one request: its status and body, or why there is none.
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Result<(u16, String), String> {
    let map = Headers::new();
    map.set("user-agent", "edge-auth")
        .map_err(|_| "the request could not be built".to_owned())?;
    for (name, value) in headers {
        map.set(name, value)
            .map_err(|_| "the request could not be built".to_owned())?;
    }
    let mut init = RequestInit::new();
    init.with_method(if method == "POST" {
        Method::Post
    } else {
        Method::Get
    })
    .with_headers(map)
    .with_redirect(RequestRedirect::Manual);
    if let Some(form) = form {
        init.with_body(Some(JsValue::from_str(form)));
    }
    let request = Request::new_with_init(url, &init)
        .map_err(|_| "the request could not be built".to_owned())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let send = Box::pin(fetch.send_with_signal(&signal));
    let timeout = Box::pin(Delay::from(Duration::from_millis(TIMEOUT_MS)));
    let mut response = match select(send, timeout).await {
        Either::Left((response, _)) => response.map_err(|error| error.to_string())?,
        Either::Right(((), _)) => {
            controller.abort();
            return Err(format!("no answer within {TIMEOUT_MS} ms"));
        }
    };
    let declared = response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err("the answer is too large".into());
    }
    let body = response.text().await.map_err(|error| error.to_string())?;
    if body.len() > MAX_BODY_BYTES {
        return Err("the answer is too large".into());
    }
    Ok((response.status_code(), body))
}
