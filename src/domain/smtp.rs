//! The SMTP submission dialogue (RFC 5321, RFC 4954), minus the socket: reply parsing,
//! capability checks, AUTH payloads and DATA encoding. `mail::smtp` drives a real socket
//! with these.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One (possibly multi-line) server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// Whether an EHLO reply lists a keyword (e.g. `STARTTLS`, `AUTH`).
    pub fn has_extension(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
        })
    }

    /// The AUTH mechanisms an EHLO reply offers, upper-cased.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|line| {
                let mut words = line.split(|c: char| c.is_whitespace() || c == '=');
                words
                    .next()
                    .filter(|word| word.eq_ignore_ascii_case("AUTH"))
                    .map(|_| words.map(str::to_ascii_uppercase).collect::<Vec<_>>())
            })
            .flatten()
            .filter(|word| !word.is_empty())
            .collect()
    }
}

/// Try to take one complete reply from the front of `buffer`; returns it and the number of
/// bytes it used, or `None` when more input is needed. A malformed line is an error.
pub fn parse_reply(buffer: &str) -> Result<Option<(Reply, usize)>, String> {
    let mut lines = Vec::new();
    let mut consumed = 0;
    let mut code = 0;
    while let Some(end) = buffer[consumed..].find("\r\n") {
        let line = &buffer[consumed..consumed + end];
        consumed += end + 2;
        if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
            return Err(format!("malformed SMTP reply line: {line:?}"));
        }
        let line_code: u16 = line[..3].parse().map_err(|_| "bad reply code".to_owned())?;
        if code != 0 && line_code != code {
            return Err("reply code changed inside a multi-line reply".into());
        }
        code = line_code;
        let separator = line.as_bytes().get(3).copied();
        lines.push(line.get(4..).unwrap_or_default().to_owned());
        match separator {
            Some(b'-') => continue,
            Some(b' ') | None => return Ok(Some((Reply { code, lines }, consumed))),
            Some(_) => return Err(format!("malformed SMTP reply line: {line:?}")),
        }
    }
    Ok(None)
}

/// `AUTH PLAIN` initial response: base64 of `\0user\0password`.
pub fn auth_plain(username: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{username}\0{password}"))
}

/// A value for the `AUTH LOGIN` exchange.
pub fn auth_login_value(value: &str) -> String {
    STANDARD.encode(value)
}

/// The bare address inside `Name <address>` (or the value itself).
pub fn envelope_address(mailbox: &str) -> &str {
    match (mailbox.rfind('<'), mailbox.rfind('>')) {
        (Some(start), Some(end)) if start < end => mailbox[start + 1..end].trim(),
        _ => mailbox.trim(),
    }
}

/// The DATA payload: CRLF line endings, leading dots doubled, and the terminating `.` line.
pub fn data_payload(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 16);
    for line in message.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // `split` yields an empty last piece for a trailing newline; drop its extra CRLF.
    if message.ends_with('\n') {
        out.truncate(out.len() - 2);
    }
    out.push_str(".\r\n");
    out
}

/// Whether a value is safe inside an SMTP command (no CR/LF smuggling of extra commands).
pub fn is_command_safe(value: &str) -> bool {
    !value.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies_parse() {
        let (reply, used) = parse_reply("220 mail.test ESMTP\r\nextra")
            .unwrap()
            .unwrap();
        assert_eq!(reply.code, 220);
        assert_eq!(used, 21);
        let ehlo = "250-mail.test\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 1000\r\n";
        let (reply, used) = parse_reply(ehlo).unwrap().unwrap();
        assert_eq!(used, ehlo.len());
        assert_eq!(reply.lines.len(), 4);
        assert!(reply.has_extension("starttls"));
        assert!(!reply.has_extension("PIPELINING"));
        assert_eq!(reply.auth_mechanisms(), vec!["PLAIN", "LOGIN"]);
    }

    #[test]
    fn incomplete_replies_wait_for_more_input() {
        assert_eq!(parse_reply("250-first\r\n250 sec").unwrap(), None);
        assert_eq!(parse_reply("").unwrap(), None);
    }

    #[test]
    fn garbage_replies_are_errors() {
        assert!(parse_reply("HELLO\r\n").is_err());
        assert!(parse_reply("250-a\r\n354 b\r\n").is_err());
    }

    #[test]
    fn auth_plain_encodes_both_credentials() {
        assert_eq!(auth_plain("user", "pass"), "AHVzZXIAcGFzcw==");
        assert_eq!(auth_login_value("user"), "dXNlcg==");
    }

    #[test]
    fn envelope_addresses_are_extracted() {
        assert_eq!(
            envelope_address("Acme <no-reply@acme.test>"),
            "no-reply@acme.test"
        );
        assert_eq!(envelope_address("bare@acme.test"), "bare@acme.test");
    }

    #[test]
    fn data_payload_stuffs_dots_and_terminates() {
        assert_eq!(data_payload("a\n.b\r\n..c\n"), "a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(data_payload("x"), "x\r\n.\r\n");
    }

    #[test]
    fn command_values_with_line_breaks_are_unsafe() {
        assert!(is_command_safe("a@b.test"));
        assert!(!is_command_safe("a@b.test>\r\nRCPT TO:<c@d.test"));
    }
}
