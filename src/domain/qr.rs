//! QR codes drawn as SVG, for TOTP enrolment: the page shows the code inline, without an
//! image endpoint, a canvas or a script.
//!
//! The drawing is one `<path>`, one rectangle per run of dark modules in a row, on a white
//! background with the four-module quiet zone the standard requires (scanners fail without
//! it on dark pages). Coordinates are in modules through `viewBox`, so the page sizes the
//! image with CSS and it stays sharp at any size. A `<title>` gives it an accessible name.

use qrcodegen::{QrCode, QrCodeEcc};
use std::fmt::Write as _;

/// Light modules around the symbol (ISO/IEC 18004 §6.3.8).
pub const QUIET_ZONE: i32 = 4;

/// `text` as a standalone SVG document, titled `title` (escaped here). Error correction is
/// level M (15%, what authenticator-app QR codes use), raised for free when the version has
/// room. `None` when the text does not fit the largest QR code (version 40, 2,331 bytes at
/// level M).
pub fn qr_svg(text: &str, title: &str) -> Option<String> {
    let code = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let size = code.size();
    let full = size + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !code.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && code.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            // Writing to a String cannot fail.
            let _ = write!(
                path,
                "M{},{}h{run}v1h-{run}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            );
        }
    }
    Some(format!(
        concat!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {full} {full}" role="img" shape-rendering="crispEdges">"#,
            r#"<title>{title}</title>"#,
            r##"<rect width="{full}" height="{full}" fill="#fff"/>"##,
            r##"<path fill="#000" d="{path}"/>"##,
            "</svg>"
        ),
        full = full,
        title = escape_xml(title),
        path = path,
    ))
}

/// Text made safe inside an XML element or attribute.
fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The side of the drawing in modules, read back from `viewBox`.
    fn side(svg: &str) -> i32 {
        let start = svg.find("viewBox=\"0 0 ").unwrap() + "viewBox=\"0 0 ".len();
        let rest = &svg[start..];
        rest[..rest.find(' ').unwrap()].parse().unwrap()
    }

    #[test]
    fn the_svg_is_one_titled_path_on_a_background() {
        let svg = qr_svg("otpauth://totp/Edge:ada?secret=ABC", "Scan me").unwrap();
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 "#));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path ").count(), 1);
        assert_eq!(svg.matches("<title>Scan me</title>").count(), 1);
        assert_eq!(svg.matches("<rect ").count(), 1);
        // Every element opened is closed (or self-closing).
        assert_eq!(svg.matches("<svg").count(), svg.matches("</svg>").count());
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        // Only path commands, numbers and separators in the path data.
        let data_start = svg.find(" d=\"").unwrap() + 4;
        let data = &svg[data_start..];
        let data = &data[..data.find('"').unwrap()];
        assert!(data
            .chars()
            .all(|c| c.is_ascii_digit() || "Mhvz,-".contains(c)));
        assert!(data.starts_with("M4,4h7v1h-7z"), "finder pattern's top row");
    }

    #[test]
    fn the_svg_is_deterministic() {
        let a = qr_svg("otpauth://totp/Edge:ada?secret=ABC", "t").unwrap();
        let b = qr_svg("otpauth://totp/Edge:ada?secret=ABC", "t").unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            qr_svg("otpauth://totp/Edge:bob?secret=ABC", "t").unwrap()
        );
    }

    #[test]
    fn the_version_grows_with_the_text() {
        let short = side(&qr_svg("hi", "t").unwrap());
        let medium = side(&qr_svg(&"x".repeat(100), "t").unwrap());
        let long = side(&qr_svg(&"x".repeat(1000), "t").unwrap());
        // Version 1 is 21 modules plus the quiet zone on both sides.
        assert_eq!(short, 21 + 2 * QUIET_ZONE);
        assert!(short < medium && medium < long);
        // Each version adds four modules a side.
        assert_eq!((medium - 2 * QUIET_ZONE - 17) % 4, 0);
    }

    #[test]
    fn text_too_long_for_any_qr_code_is_refused() {
        assert!(qr_svg(&"x".repeat(2331), "t").is_some());
        assert!(qr_svg(&"x".repeat(3000), "t").is_none());
    }

    #[test]
    fn the_title_is_escaped() {
        let svg = qr_svg("x", "<script>&\"'\u{7}").unwrap();
        assert!(svg.contains("<title>&lt;script&gt;&amp;&quot;&apos;</title>"));
    }
}
