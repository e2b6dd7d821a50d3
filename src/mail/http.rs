//! The `http` provider: one JSON POST per message with a bearer key, the shape Resend-style
//! APIs and most webhooks take: `{from, to, subject, text, html}`.

use crate::domain::email::Message;
use serde_json::json;
use wasm_bindgen::JsValue;
use worker::{Fetch, Headers, Method, Request, RequestInit};

pub async fn send(url: &str, key: &str, from: &str, message: &Message) -> Result<(), String> {
    let body = json!({
        "from": from,
        "to": message.to,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "tags": [{ "name": "purpose", "value": message.purpose.as_str() }],
    });
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .and_then(|_| headers.set("authorization", &format!("Bearer {key}")))
        .map_err(|error| error.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body.to_string())));
    let request = Request::new_with_init(url, &init).map_err(|error| error.to_string())?;
    let response = Fetch::Request(request)
        .send()
        .await
        .map_err(|error| format!("HTTP email request failed: {error}"))?;
    match response.status_code() {
        200..=299 => Ok(()),
        status => Err(format!("HTTP email provider answered {status}")),
    }
}
