//! Delivering email through the configured provider.
//!
//! The outbox writes to D1 before the response (so a developer sees the message at once).
//! Real providers send after the response through `wait_until`, with a bounded retry; a
//! message that still fails is logged as an error with its purpose and masked recipient —
//! never silently dropped, and never logged with its token or code.

pub mod headers;
pub mod http;
pub mod smtp;

use crate::config::{Config, EmailProvider};
use crate::domain::email::{to_mime, Message};
use crate::domain::metrics::Event;
use crate::domain::user::mask_email;
use crate::error::ApiError;
use crate::mail::headers::{rfc2822_now, sender_domain};
use crate::runtime::now_seconds;
use crate::store::backend::Backend;
use crate::store::metrics_batch;
use crate::store::traits::OutboxStore;
use serde_json::json;
use std::rc::Rc;
use std::time::Duration;
use uuid::Uuid;
use worker::{console_log, Context, Date, Delay, Env};

/// Attempts per message for providers that can fail transiently.
const ATTEMPTS: u32 = 3;

/// A rendered message with the secrets it carries (kept only by the outbox).
pub struct Outgoing {
    pub message: Message,
    /// The request that sent it, so its log lines join that request's.
    pub request_id: String,
    pub token: Option<String>,
    pub code: Option<String>,
}

fn log_line(level: &str, event: &str, outgoing: &Outgoing, extra: serde_json::Value) {
    let message = &outgoing.message;
    let mut line = json!({
        "timestamp": crate::domain::time::rfc3339_millis(Date::now().as_millis()),
        "level": level,
        "event": event,
        "request_id": outgoing.request_id,
        "purpose": message.purpose.as_str(),
        "to": mask_email(&message.to),
    });
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    console_log!("{}", line);
}

/// Send one message the configured way. Only the outbox can fail the request; real
/// providers report through the log.
pub async fn deliver(
    env: &Env,
    config: &Rc<Config>,
    worker_ctx: &Context,
    outgoing: Outgoing,
) -> Result<(), ApiError> {
    match &config.email.provider {
        EmailProvider::Disabled => {
            log_line(
                "warn",
                "email_not_sent",
                &outgoing,
                json!({ "reason": "EMAIL_PROVIDER is none" }),
            );
            Ok(())
        }
        EmailProvider::Outbox => {
            Backend::new(env, config.database)
                .store_message(
                    &Uuid::new_v4().to_string(),
                    &outgoing.message,
                    outgoing.token.as_deref(),
                    outgoing.code.as_deref(),
                    now_seconds(),
                )
                .await
                .inspect_err(|_| metrics_batch::record(Event::EmailFailed))?;
            metrics_batch::record(Event::EmailSent);
            log_line(
                "info",
                "email_sent",
                &outgoing,
                json!({ "provider": "outbox" }),
            );
            Ok(())
        }
        _ => {
            let env = env.clone();
            let config = Rc::clone(config);
            worker_ctx.wait_until(async move {
                send_with_retry(&env, &config, &outgoing).await;
            });
            Ok(())
        }
    }
}

async fn send_with_retry(env: &Env, config: &Config, outgoing: &Outgoing) {
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        match send_once(env, config, &outgoing.message).await {
            Ok(()) => {
                metrics_batch::record(Event::EmailSent);
                log_line(
                    "info",
                    "email_sent",
                    outgoing,
                    json!({ "attempt": attempt }),
                );
                return;
            }
            Err(error) => {
                last_error = error;
                if attempt < ATTEMPTS {
                    Delay::from(Duration::from_millis(250 * 4_u64.pow(attempt - 1))).await;
                }
            }
        }
    }
    metrics_batch::record(Event::EmailFailed);
    log_line(
        "error",
        "email_delivery_failed",
        outgoing,
        json!({ "attempts": ATTEMPTS, "error": last_error }),
    );
}

/// One delivery attempt; the error is a description for the log.
pub async fn send_once(env: &Env, config: &Config, message: &Message) -> Result<(), String> {
    let email = &config.email;
    match &email.provider {
        EmailProvider::Smtp { .. } => smtp::send(email, message).await,
        EmailProvider::Http { url, key } => http::send(url, key, &email.from, message).await,
        EmailProvider::Cloudflare => {
            let mime = to_mime(
                &email.from,
                message,
                &format!("{}@{}", Uuid::new_v4(), sender_domain(&email.from)),
                &rfc2822_now(),
                &format!("=_{}", Uuid::new_v4().simple()),
            );
            let binding = env.send_email("EMAIL").map_err(|error| error.to_string())?;
            let from = crate::domain::smtp::envelope_address(&email.from);
            let raw = worker::EmailMessage::new(from, &message.to, &mime)
                .map_err(|error| format!("{error:?}"))?;
            binding
                .send(&raw)
                .await
                .map(|_| ())
                .map_err(|error| format!("{error:?}"))
        }
        EmailProvider::Disabled | EmailProvider::Outbox => Ok(()),
    }
}
