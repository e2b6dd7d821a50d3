//! Email messages: the templates (all in one place), HTML escaping, and the MIME form an
//! SMTP relay or the `send_email` binding takes.
//!
//! Every message has a plain-text and an HTML body carrying the same facts: a link to a page
//! of this service (whose button, not the link itself, spends the token) and a six-digit code
//! for typing on another device.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Why a message is sent; also the purpose of its one-time token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    ResetPassword,
    ChangeEmail,
    /// A notice to the old address that the email is being changed; carries no token.
    EmailChangeNotice,
    /// A notice to the owner of an address that someone tried to sign up with it; carries
    /// no token. (The signup itself answers as if it had worked, so the address's owner is
    /// the only one told it is taken.)
    SignupAttemptNotice,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::ChangeEmail => "change_email",
            Purpose::EmailChangeNotice => "email_change_notice",
            Purpose::SignupAttemptNotice => "signup_attempt_notice",
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub purpose: Purpose,
}

/// What a template needs besides the recipient.
pub struct TemplateContext<'a> {
    pub app_name: &'a str,
    /// Absolute link to the page that spends the token (`None` for notices).
    pub link: Option<&'a str>,
    pub code: Option<&'a str>,
    /// Minutes until the token expires.
    pub valid_minutes: i64,
    /// For email-change messages: the new address.
    pub new_email: Option<&'a str>,
}

/// Escape text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn validity(minutes: i64) -> String {
    if minutes >= 120 && minutes % 60 == 0 {
        format!("{} hours", minutes / 60)
    } else {
        format!("{minutes} minutes")
    }
}

/// Render the message for a purpose.
pub fn render(purpose: Purpose, to: &str, ctx: &TemplateContext<'_>) -> Message {
    let app = ctx.app_name;
    let (subject, lead, action) = match purpose {
        Purpose::VerifyEmail => (
            format!("Verify your email for {app}"),
            format!("Confirm that this address belongs to your {app} account."),
            "Verify my email",
        ),
        Purpose::ResetPassword => (
            format!("Reset your {app} password"),
            format!("Someone asked to reset the password of your {app} account. If it was not you, ignore this message: nothing changes until the link or code is used."),
            "Choose a new password",
        ),
        Purpose::ChangeEmail => (
            format!("Confirm your new email for {app}"),
            format!("Confirm that this address should become the email of your {app} account."),
            "Confirm this address",
        ),
        Purpose::EmailChangeNotice => (
            format!("Your {app} email is being changed"),
            format!(
                "A change of the email address of your {app} account to {} was requested. It takes effect only when confirmed from the new address. If this was not you, change your password now.",
                ctx.new_email.unwrap_or("another address")
            ),
            "",
        ),
        Purpose::SignupAttemptNotice => (
            format!("Someone tried to sign up to {app} with your email"),
            format!(
                "Someone tried to create a new {app} account with this address, which already has one, so no new account was made. If it was you, sign in, or reset your password if you have forgotten it. If it was not you, you can ignore this message: your account is unchanged."
            ),
            "",
        ),
    };
    let mut text = format!("{lead}\n\n");
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{}</p>",
        escape_html(&lead)
    );
    if let Some(link) = ctx.link {
        text.push_str(&format!("{action}: {link}\n\n"));
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            escape_html(link),
            escape_html(action)
        ));
    }
    if let Some(code) = ctx.code {
        text.push_str(&format!("Or enter this code: {code}\n\n"));
        html.push_str(&format!(
            "<p>Or enter this code: <strong style=\"font-size:1.4em;letter-spacing:0.2em\">{}</strong></p>",
            escape_html(code)
        ));
    }
    if ctx.link.is_some() || ctx.code.is_some() {
        let valid = validity(ctx.valid_minutes);
        text.push_str(&format!(
            "The link and code are valid for {valid} and work once.\n"
        ));
        html.push_str(&format!(
            "<p>The link and code are valid for {valid} and work once.</p>"
        ));
    }
    html.push_str("</body></html>");
    Message {
        to: to.to_owned(),
        subject,
        text,
        html,
        purpose,
    }
}

/// Encode a header value per RFC 2047 when it is not plain ASCII.
fn encode_header(value: &str) -> String {
    if value.is_ascii() && !value.contains(['\r', '\n']) {
        value.to_owned()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            STANDARD.encode(value.replace(['\r', '\n'], " "))
        )
    }
}

/// Base64 with lines of at most 76 characters (RFC 2045).
fn base64_lines(body: &str) -> String {
    let encoded = STANDARD.encode(body.as_bytes());
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 76 * 2 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// The full RFC 5322 message: headers and a multipart/alternative body with text and HTML.
/// `boundary` and `message_id` come from the caller (randomness stays outside the domain).
pub fn to_mime(
    from: &str,
    message: &Message,
    message_id: &str,
    date_rfc2822: &str,
    boundary: &str,
) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date_rfc2822}\r\n\
         Message-ID: <{message_id}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{text}\
         --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{html}\
         --{boundary}--\r\n",
        to = message.to,
        subject = encode_header(&message.subject),
        text = base64_lines(&message.text),
        html = base64_lines(&message.html),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context<'a>(link: Option<&'a str>, code: Option<&'a str>) -> TemplateContext<'a> {
        TemplateContext {
            app_name: "Acme <Auth>",
            link,
            code,
            valid_minutes: 30,
            new_email: Some("new@example.com"),
        }
    }

    #[test]
    fn verification_message_carries_link_and_code_in_both_bodies() {
        let message = render(
            Purpose::VerifyEmail,
            "a@example.com",
            &context(
                Some("https://auth.example/verify-email?token=abc&x=1"),
                Some("123456"),
            ),
        );
        assert_eq!(message.subject, "Verify your email for Acme <Auth>");
        assert!(message
            .text
            .contains("https://auth.example/verify-email?token=abc&x=1"));
        assert!(message.text.contains("123456"));
        assert!(message
            .html
            .contains("href=\"https://auth.example/verify-email?token=abc&amp;x=1\""));
        assert!(message.html.contains("123456"));
        assert!(
            message.html.contains("Acme &lt;Auth&gt;"),
            "app name is escaped"
        );
        assert!(message.text.contains("30 minutes"));
    }

    #[test]
    fn notices_carry_no_token() {
        let message = render(
            Purpose::EmailChangeNotice,
            "old@example.com",
            &context(None, None),
        );
        assert!(message.text.contains("new@example.com"));
        assert!(!message.text.contains("code"));
        assert!(!message.html.contains("href"));
    }

    #[test]
    fn a_signup_attempt_notice_tells_the_owner_what_to_do_and_carries_no_token() {
        let message = render(
            Purpose::SignupAttemptNotice,
            "owner@example.com",
            &context(None, None),
        );
        assert_eq!(message.purpose.as_str(), "signup_attempt_notice");
        assert_eq!(
            message.subject,
            "Someone tried to sign up to Acme <Auth> with your email"
        );
        assert!(message.text.contains("sign in, or reset your password"));
        assert!(!message.text.contains("code"));
        assert!(!message.html.contains("href"));
        assert!(message.html.contains("Acme &lt;Auth&gt;"));
    }

    #[test]
    fn html_escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn mime_has_both_parts_and_encodes_non_ascii_subjects() {
        let mut message = render(
            Purpose::ResetPassword,
            "a@example.com",
            &context(Some("https://x/y"), Some("000001")),
        );
        message.subject = "Passwort zurücksetzen".into();
        let mime = to_mime(
            "Acme <no-reply@acme.test>",
            &message,
            "id@acme.test",
            "Thu, 26 Nov 2026 19:00:00 +0000",
            "b1",
        );
        assert!(mime.contains("Subject: =?UTF-8?B?"));
        assert!(mime.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(mime.contains("Content-Type: text/html; charset=utf-8"));
        assert!(mime.ends_with("--b1--\r\n"));
        assert!(mime.lines().all(|line| line.len() <= 998));
        let text_part = mime.split("--b1\r\n").nth(1).unwrap();
        let body: String = text_part
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .collect();
        let decoded = String::from_utf8(STANDARD.decode(body).unwrap()).unwrap();
        assert!(decoded.contains("000001"));
    }

    #[test]
    fn header_injection_is_neutralised() {
        assert!(!encode_header("Hi\r\nBcc: evil@example.com").contains('\n'));
    }
}
