//! Client of the Have I Been Pwned range API: `GET {HIBP_API_URL}/range/{prefix}` with
//! `Add-Padding: true`. Only the 5-character SHA-1 prefix is sent; the comparison with the
//! suffix happens in `domain::hibp`. A request is abandoned after [`TIMEOUT_MS`], so a slow
//! range API cannot hold a signup open.

use futures_util::future::{select, Either};
use std::time::Duration;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit};

/// How long a range query may take before the check gives up (and fails open).
pub const TIMEOUT_MS: u64 = 2_000;

/// The range response body for a prefix, or why there is none (for the log; it never
/// contains the password or its hash, only the prefix that was sent anyway).
pub async fn fetch_range(api_url: &str, prefix: &str) -> Result<String, String> {
    let headers = Headers::new();
    headers
        .set("add-padding", "true")
        .and_then(|_| headers.set("user-agent", "edge-auth"))
        .map_err(|error| error.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let request = Request::new_with_init(&format!("{api_url}/range/{prefix}"), &init)
        .map_err(|error| error.to_string())?;
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
    if response.status_code() != 200 {
        return Err(format!("answered {}", response.status_code()));
    }
    response.text().await.map_err(|error| error.to_string())
}
