//! SMTP submission over a Workers TCP socket: STARTTLS or implicit TLS, AUTH PLAIN or LOGIN.
//! The dialogue's rules live in `domain::smtp`; this file moves bytes and keeps time.

use crate::config::{EmailProvider, EmailSettings, SmtpSecurity};
use crate::domain::email::{to_mime, Message};
use crate::domain::smtp::{
    auth_login_value, auth_plain, data_payload, envelope_address, is_command_safe, parse_reply,
    Reply,
};
use crate::mail::headers::{rfc2822_now, sender_domain};
use futures_util::future::{select, Either};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use worker::{Delay, SecureTransport, Socket};

/// The longest reply accepted; a server sending more is not a mail server we can talk to.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// The whole conversation must finish within this.
const TIMEOUT: Duration = Duration::from_secs(20);

struct Connection {
    socket: Socket,
    buffer: String,
}

impl Connection {
    async fn read_reply(&mut self) -> Result<Reply, String> {
        loop {
            if let Some((reply, used)) = parse_reply(&self.buffer)? {
                self.buffer.drain(..used);
                return Ok(reply);
            }
            if self.buffer.len() > MAX_REPLY_BYTES {
                return Err("SMTP reply too long".into());
            }
            let mut chunk = [0_u8; 2048];
            let read = self
                .socket
                .read(&mut chunk)
                .await
                .map_err(|error| format!("SMTP read failed: {error}"))?;
            if read == 0 {
                return Err("SMTP server closed the connection".into());
            }
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk[..read]));
        }
    }

    async fn write(&mut self, data: &str) -> Result<(), String> {
        self.socket
            .write_all(data.as_bytes())
            .await
            .map_err(|error| format!("SMTP write failed: {error}"))?;
        self.socket
            .flush()
            .await
            .map_err(|error| format!("SMTP write failed: {error}"))
    }

    /// Send a command and require a reply with one of the expected codes. The command text
    /// is not echoed into errors: it may carry credentials.
    async fn command(&mut self, line: &str, expected: &[u16], what: &str) -> Result<Reply, String> {
        self.write(&format!("{line}\r\n")).await?;
        let reply = self.read_reply().await?;
        if expected.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(format!(
                "SMTP {what} refused: {} {}",
                reply.code,
                reply.lines.first().map(String::as_str).unwrap_or_default()
            ))
        }
    }
}

/// Deliver one message through the configured relay.
pub async fn send(settings: &EmailSettings, message: &Message) -> Result<(), String> {
    let conversation = Box::pin(converse(settings, message));
    match select(conversation, Delay::from(TIMEOUT)).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err("SMTP conversation timed out".into()),
    }
}

async fn converse(settings: &EmailSettings, message: &Message) -> Result<(), String> {
    let EmailProvider::Smtp {
        host,
        port,
        security,
        username,
        password,
    } = &settings.provider
    else {
        return Err("SMTP is not the configured provider".into());
    };
    let from = envelope_address(&settings.from);
    if !is_command_safe(from) || !is_command_safe(&message.to) {
        return Err("address contains a line break".into());
    }
    let transport = match security {
        SmtpSecurity::StartTls => SecureTransport::StartTls,
        SmtpSecurity::Tls => SecureTransport::On,
        SmtpSecurity::None => SecureTransport::Off,
    };
    let socket = Socket::builder()
        .secure_transport(transport)
        .connect(host.clone(), *port)
        .map_err(|error| format!("SMTP connect failed: {error}"))?;
    let mut connection = Connection {
        socket,
        buffer: String::new(),
    };
    let greeting = connection.read_reply().await?;
    if greeting.code != 220 {
        return Err(format!("SMTP greeting refused: {}", greeting.code));
    }
    let helo_name = sender_domain(&settings.from).to_owned();
    let mut ehlo = connection
        .command(&format!("EHLO {helo_name}"), &[250], "EHLO")
        .await?;
    if *security == SmtpSecurity::StartTls {
        if !ehlo.has_extension("STARTTLS") {
            return Err("SMTP server does not offer STARTTLS".into());
        }
        connection.command("STARTTLS", &[220], "STARTTLS").await?;
        connection = Connection {
            socket: connection.socket.start_tls(),
            buffer: String::new(),
        };
        ehlo = connection
            .command(&format!("EHLO {helo_name}"), &[250], "EHLO")
            .await?;
    }
    if let (Some(username), Some(password)) = (username, password) {
        let mechanisms = ehlo.auth_mechanisms();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            connection
                .command(
                    &format!("AUTH PLAIN {}", auth_plain(username, password)),
                    &[235],
                    "AUTH PLAIN",
                )
                .await?;
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            connection
                .command("AUTH LOGIN", &[334], "AUTH LOGIN")
                .await?;
            connection
                .command(&auth_login_value(username), &[334], "AUTH LOGIN username")
                .await?;
            connection
                .command(&auth_login_value(password), &[235], "AUTH LOGIN password")
                .await?;
        } else {
            return Err("SMTP server offers neither AUTH PLAIN nor AUTH LOGIN".into());
        }
    }
    connection
        .command(&format!("MAIL FROM:<{from}>"), &[250], "MAIL FROM")
        .await?;
    connection
        .command(&format!("RCPT TO:<{}>", message.to), &[250, 251], "RCPT TO")
        .await?;
    connection.command("DATA", &[354], "DATA").await?;
    let mime = to_mime(
        &settings.from,
        message,
        &format!("{}@{}", Uuid::new_v4(), helo_name),
        &rfc2822_now(),
        &format!("=_{}", Uuid::new_v4().simple()),
    );
    connection.write(&data_payload(&mime)).await?;
    let accepted = connection.read_reply().await?;
    if accepted.code != 250 {
        return Err(format!("SMTP message refused: {}", accepted.code));
    }
    // The message is accepted; a failed QUIT changes nothing.
    let _ = connection.command("QUIT", &[221], "QUIT").await;
    let _ = connection.socket.close().await;
    Ok(())
}
