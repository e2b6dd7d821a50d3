//! Service metrics: what is counted, how counts add up, and their Prometheus text rendering.
//!
//! A [`Metrics`] value is a set of counts. The same type serves as an isolate's batch of
//! deltas, as the payload of a flush, and as the aggregator's durable totals, because adding
//! a batch to the totals is just [`Metrics::merge`]. Label values come from the code (route
//! patterns, status codes, rate-limit scopes), never from the request, so the number of
//! series stays bounded; rendering escapes them all the same.
//!
//! Nothing here touches the runtime: time arrives as milliseconds, so batching, bucketing and
//! rendering are unit-tested natively.

use crate::domain::secret::constant_time_eq;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in milliseconds (Prometheus' default
/// buckets: logins spend ~40 ms in argon2id, most other routes a few ms).
pub const LATENCY_BUCKETS_MS: [u64; 11] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/// Something a handler reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// An account was created.
    Signup,
    /// A login issued tokens.
    LoginSuccess,
    /// A login was refused: wrong password, unknown account, ban, lockout, unverified email.
    LoginFailure,
    /// A refresh token was exchanged for a new pair.
    Refresh,
    /// A spent refresh token came back after its grace window; its session was revoked.
    RefreshTokenReuse,
    /// A request was refused by the budget of a scope (`login`, `signup`, ...).
    RateLimited { scope: &'a str },
    /// A provider accepted a message (or the outbox stored it).
    EmailSent,
    /// A message could not be delivered, after its retries.
    EmailFailed,
    /// A provider sign-in's callback came to `result`: `success`, `link_code`,
    /// `invalid_state`, or the error sent back to the app (`provider_failed`,
    /// `link_required`, `access_denied`, ...). `provider` is a configured name.
    OAuthSignIn { provider: &'a str, result: &'a str },
    /// A second factor was checked: `factor` is `totp` or `recovery_code`, `result`
    /// `success` or `failure`.
    Mfa { factor: &'a str, result: &'a str },
    /// A passkey operation (`register`, `login`, `rename`, `delete`, or `sign_count` for a
    /// counter that did not move forward) came to `result` (`success`, `failure`,
    /// `regressed`).
    Passkey { operation: &'a str, result: &'a str },
}

/// The counter families, in the order they are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    HttpRequests,
    Signups,
    Logins,
    Refreshes,
    RefreshTokenReuse,
    RateLimited,
    EmailsSent,
    EmailsFailed,
    OAuthSignIns,
    Mfa,
    Passkeys,
}

impl Counter {
    const ALL: [Counter; 11] = [
        Counter::HttpRequests,
        Counter::Signups,
        Counter::Logins,
        Counter::Refreshes,
        Counter::RefreshTokenReuse,
        Counter::RateLimited,
        Counter::EmailsSent,
        Counter::EmailsFailed,
        Counter::OAuthSignIns,
        Counter::Mfa,
        Counter::Passkeys,
    ];

    /// The exposed metric name.
    pub fn name(self) -> &'static str {
        match self {
            Counter::HttpRequests => "edge_auth_http_requests_total",
            Counter::Signups => "edge_auth_signups_total",
            Counter::Logins => "edge_auth_logins_total",
            Counter::Refreshes => "edge_auth_token_refreshes_total",
            Counter::RefreshTokenReuse => "edge_auth_refresh_token_reuse_total",
            Counter::RateLimited => "edge_auth_rate_limited_total",
            Counter::EmailsSent => "edge_auth_emails_sent_total",
            Counter::EmailsFailed => "edge_auth_emails_failed_total",
            Counter::OAuthSignIns => "edge_auth_oauth_sign_ins_total",
            Counter::Mfa => "edge_auth_mfa_total",
            Counter::Passkeys => "edge_auth_passkey_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Counter::HttpRequests => "HTTP requests answered, by route pattern and status code.",
            Counter::Signups => "Accounts created.",
            Counter::Logins => "Login attempts that were decided, by result (success or failure).",
            Counter::Refreshes => "Refresh tokens exchanged for a new token pair.",
            Counter::RefreshTokenReuse => {
                "Spent refresh tokens presented again after the grace window (session revoked)."
            }
            Counter::RateLimited => "Requests refused by a rate-limit budget, by scope.",
            Counter::EmailsSent => "Email messages handed to the provider.",
            Counter::EmailsFailed => "Email messages that could not be delivered after retries.",
            Counter::OAuthSignIns => {
                "Provider sign-in callbacks, by provider and result (success or the error sent back)."
            }
            Counter::Mfa => {
                "Second-factor checks (TOTP or recovery code), by factor and result (success or failure)."
            }
            Counter::Passkeys => {
                "Passkey operations (register, login, rename, delete; sign_count regressions), by result."
            }
        }
    }

    /// Series always shown, at zero when nothing happened yet, so a dashboard can tell "none"
    /// from "not scraped".
    fn zero_series(self) -> Vec<Labels> {
        match self {
            Counter::HttpRequests
            | Counter::RateLimited
            | Counter::OAuthSignIns
            | Counter::Mfa
            | Counter::Passkeys => Vec::new(),
            Counter::Logins => vec![
                vec![label("result", "failure")],
                vec![label("result", "success")],
            ],
            _ => vec![Vec::new()],
        }
    }
}

/// Label pairs of one series, in a fixed order per family.
pub type Labels = Vec<(String, String)>;

fn label(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// One counter series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Series {
    pub counter: Counter,
    pub labels: Labels,
}

/// The latency observations of one route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Observations per bucket, keyed by the bucket's upper bound in milliseconds; each
    /// observation is in the first bucket that holds it (not cumulative). Keyed by bound
    /// rather than by position, so totals stored under other bounds still render validly.
    #[serde(default)]
    pub buckets: BTreeMap<u64, u64>,
    /// Sum of all observations, milliseconds (an integer, so merging is exact).
    #[serde(default)]
    pub sum_ms: u64,
    /// Number of observations, including those beyond the last bound (the `+Inf` bucket).
    #[serde(default)]
    pub count: u64,
}

impl Histogram {
    fn observe(&mut self, duration_ms: u64) {
        if let Some(&bound) = LATENCY_BUCKETS_MS
            .iter()
            .find(|&&bound| duration_ms <= bound)
        {
            *self.buckets.entry(bound).or_insert(0) += 1;
        }
        self.sum_ms = self.sum_ms.saturating_add(duration_ms);
        self.count += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (&bound, &count) in &other.buckets {
            *self.buckets.entry(bound).or_insert(0) += count;
        }
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        self.count = self.count.saturating_add(other.count);
    }

    /// `(upper bound in ms, cumulative count)` for every bound, current and stored.
    pub fn cumulative(&self) -> Vec<(u64, u64)> {
        let mut bounds: Vec<u64> = LATENCY_BUCKETS_MS.to_vec();
        bounds.extend(self.buckets.keys().copied());
        bounds.sort_unstable();
        bounds.dedup();
        let mut running = 0_u64;
        bounds
            .into_iter()
            .map(|bound| {
                running = running.saturating_add(self.buckets.get(&bound).copied().unwrap_or(0));
                (bound, running)
            })
            .collect()
    }
}

/// A set of counts: an isolate's batch of deltas, or the aggregated totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Wire", into = "Wire")]
pub struct Metrics {
    counters: BTreeMap<Series, u64>,
    /// Request latency by route pattern.
    latency: BTreeMap<String, Histogram>,
}

/// The JSON shape of [`Metrics`]: JSON object keys must be strings, so counter series travel
/// as a list.
#[derive(Serialize, Deserialize)]
struct Wire {
    #[serde(default)]
    counters: Vec<(Series, u64)>,
    #[serde(default)]
    latency: BTreeMap<String, Histogram>,
}

impl From<Wire> for Metrics {
    fn from(wire: Wire) -> Self {
        let mut metrics = Metrics {
            counters: BTreeMap::new(),
            latency: wire.latency,
        };
        for (series, value) in wire.counters {
            metrics.add(series, value);
        }
        metrics
    }
}

impl From<Metrics> for Wire {
    fn from(metrics: Metrics) -> Self {
        Wire {
            counters: metrics.counters.into_iter().collect(),
            latency: metrics.latency,
        }
    }
}

impl Metrics {
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.latency.is_empty()
    }

    fn add(&mut self, series: Series, value: u64) {
        let total = self.counters.entry(series).or_insert(0);
        *total = total.saturating_add(value);
    }

    fn increment(&mut self, counter: Counter, labels: Labels) {
        self.add(Series { counter, labels }, 1);
    }

    /// The value of one series (0 when absent).
    pub fn value(&self, counter: Counter, labels: &[(&str, &str)]) -> u64 {
        let labels: Labels = labels.iter().map(|(n, v)| label(n, v)).collect();
        self.counters
            .get(&Series { counter, labels })
            .copied()
            .unwrap_or(0)
    }

    /// The latency histogram of a route, if it saw any request.
    pub fn latency(&self, route: &str) -> Option<&Histogram> {
        self.latency.get(route)
    }

    /// Count one event.
    pub fn record(&mut self, event: Event<'_>) {
        let (counter, labels) = match event {
            Event::Signup => (Counter::Signups, Vec::new()),
            Event::LoginSuccess => (Counter::Logins, vec![label("result", "success")]),
            Event::LoginFailure => (Counter::Logins, vec![label("result", "failure")]),
            Event::Refresh => (Counter::Refreshes, Vec::new()),
            Event::RefreshTokenReuse => (Counter::RefreshTokenReuse, Vec::new()),
            Event::RateLimited { scope } => (Counter::RateLimited, vec![label("scope", scope)]),
            Event::OAuthSignIn { provider, result } => (
                Counter::OAuthSignIns,
                vec![label("provider", provider), label("result", result)],
            ),
            Event::Mfa { factor, result } => (
                Counter::Mfa,
                vec![label("factor", factor), label("result", result)],
            ),
            Event::Passkey { operation, result } => (
                Counter::Passkeys,
                vec![label("operation", operation), label("result", result)],
            ),
            Event::EmailSent => (Counter::EmailsSent, Vec::new()),
            Event::EmailFailed => (Counter::EmailsFailed, Vec::new()),
        };
        self.increment(counter, labels);
    }

    /// Count one answered request and observe its latency.
    pub fn observe_request(&mut self, route: &str, status: u16, duration_ms: u64) {
        self.increment(
            Counter::HttpRequests,
            vec![label("route", route), label("status", &status.to_string())],
        );
        self.latency
            .entry(route.to_owned())
            .or_default()
            .observe(duration_ms);
    }

    /// Add another set of counts to this one.
    pub fn merge(&mut self, other: &Metrics) {
        for (series, &value) in &other.counters {
            self.add(series.clone(), value);
        }
        for (route, histogram) in &other.latency {
            self.latency
                .entry(route.clone())
                .or_default()
                .merge(histogram);
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of these counts.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for counter in Counter::ALL {
            header(&mut out, counter.name(), counter.help(), "counter");
            let zeros = counter.zero_series();
            let mut series: BTreeMap<&Labels, u64> = self
                .counters
                .iter()
                .filter(|(key, _)| key.counter == counter)
                .map(|(key, &value)| (&key.labels, value))
                .collect();
            for labels in &zeros {
                series.entry(labels).or_insert(0);
            }
            for (labels, value) in series {
                sample(&mut out, counter.name(), labels, None, &value.to_string());
            }
            if counter == Counter::HttpRequests {
                self.render_latency(&mut out);
            }
        }
        out
    }

    fn render_latency(&self, out: &mut String) {
        let name = "edge_auth_http_request_duration_seconds";
        header(
            out,
            name,
            "Seconds from request to response, by route pattern (workerd's clock: it advances across I/O only).",
            "histogram",
        );
        for (route, histogram) in &self.latency {
            let labels = vec![label("route", route)];
            let bucket = format!("{name}_bucket");
            for (bound, cumulative) in histogram.cumulative() {
                let le = seconds(bound);
                sample(out, &bucket, &labels, Some(&le), &cumulative.to_string());
            }
            sample(
                out,
                &bucket,
                &labels,
                Some("+Inf"),
                &histogram.count.to_string(),
            );
            sample(
                out,
                &format!("{name}_sum"),
                &labels,
                None,
                &seconds(histogram.sum_ms),
            );
            sample(
                out,
                &format!("{name}_count"),
                &labels,
                None,
                &histogram.count.to_string(),
            );
        }
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &Labels, le: Option<&str>, value: &str) {
    out.push_str(name);
    let pairs = labels
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(le.map(|le| ("le", le)));
    let mut first = true;
    for (name, value) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape_label_value(value));
    }
    if !first {
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Escape a label value: backslash, double quote and line feed (the format's three escapes).
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Escape a HELP text: backslash and line feed.
pub fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Milliseconds as a decimal number of seconds, exactly (`2500` -> `2.5`, `5` -> `0.005`).
pub fn seconds(ms: u64) -> String {
    let whole = ms / 1000;
    let fraction = ms % 1000;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:03}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// An isolate's unflushed counts and how old the oldest of them is.
#[derive(Debug, Default)]
pub struct Batch {
    pending: Metrics,
    /// When the oldest unflushed count was recorded (or a failed flush was put back).
    since_ms: Option<u64>,
}

impl Batch {
    fn touch(&mut self, now_ms: u64) {
        self.since_ms.get_or_insert(now_ms);
    }

    pub fn record(&mut self, event: Event<'_>, now_ms: u64) {
        self.pending.record(event);
        self.touch(now_ms);
    }

    pub fn observe_request(&mut self, route: &str, status: u16, duration_ms: u64, now_ms: u64) {
        self.pending.observe_request(route, status, duration_ms);
        self.touch(now_ms);
    }

    /// The pending counts when the oldest is at least `interval_ms` old; the batch is then
    /// empty. `None` when nothing is due.
    pub fn take_if_due(&mut self, now_ms: u64, interval_ms: u64) -> Option<Metrics> {
        let since = self.since_ms?;
        (now_ms.saturating_sub(since) >= interval_ms).then(|| self.take())
    }

    /// Everything pending, whatever its age (a scrape flushes before it reads).
    pub fn take(&mut self) -> Metrics {
        self.since_ms = None;
        std::mem::take(&mut self.pending)
    }

    /// Put back the counts of a flush that failed. They count as new, so the next attempt
    /// waits a full interval instead of hammering an aggregator that is down.
    pub fn restore(&mut self, counts: &Metrics, now_ms: u64) {
        if counts.is_empty() {
            return;
        }
        self.pending.merge(counts);
        self.since_ms = Some(now_ms);
    }

    pub fn pending(&self) -> &Metrics {
        &self.pending
    }
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeAccess {
    Allowed,
    /// A token is configured and the request did not present it: 401.
    Unauthorized,
    /// No token is configured outside development and test: the endpoint does not exist (404).
    Hidden,
}

/// The SHA-256 digest a scrape token is kept and compared as.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Decide a scrape. `expected` is the digest of `METRICS_TOKEN` when set; `presented` the
/// bearer token of the request. Digests are compared in constant time, and comparing digests
/// rather than the tokens also hides the token's length.
pub fn scrape_access(
    expected: Option<&[u8; 32]>,
    presented: Option<&str>,
    environment: &str,
) -> ScrapeAccess {
    match expected {
        Some(expected) => match presented {
            Some(token) if constant_time_eq(&token_digest(token), expected) => {
                ScrapeAccess::Allowed
            }
            _ => ScrapeAccess::Unauthorized,
        },
        None if matches!(environment, "development" | "test") => ScrapeAccess::Allowed,
        None => ScrapeAccess::Hidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_their_series() {
        let mut metrics = Metrics::default();
        metrics.record(Event::LoginSuccess);
        metrics.record(Event::LoginFailure);
        metrics.record(Event::LoginFailure);
        metrics.record(Event::RateLimited { scope: "login" });
        metrics.record(Event::Signup);
        assert_eq!(metrics.value(Counter::Logins, &[("result", "success")]), 1);
        assert_eq!(metrics.value(Counter::Logins, &[("result", "failure")]), 2);
        assert_eq!(
            metrics.value(Counter::RateLimited, &[("scope", "login")]),
            1
        );
        assert_eq!(
            metrics.value(Counter::RateLimited, &[("scope", "signup")]),
            0
        );
        assert_eq!(metrics.value(Counter::Signups, &[]), 1);
        assert_eq!(metrics.value(Counter::Refreshes, &[]), 0);
        metrics.record(Event::OAuthSignIn {
            provider: "github",
            result: "success",
        });
        metrics.record(Event::OAuthSignIn {
            provider: "github",
            result: "provider_failed",
        });
        let series = [("provider", "github"), ("result", "success")];
        assert_eq!(metrics.value(Counter::OAuthSignIns, &series), 1);
        let series = [("provider", "google"), ("result", "success")];
        assert_eq!(metrics.value(Counter::OAuthSignIns, &series), 0);
        metrics.record(Event::Mfa {
            factor: "totp",
            result: "failure",
        });
        let series = [("factor", "totp"), ("result", "failure")];
        assert_eq!(metrics.value(Counter::Mfa, &series), 1);
        assert_eq!(Counter::Mfa.name(), "edge_auth_mfa_total");
    }

    #[test]
    fn observations_fall_in_the_first_bucket_that_holds_them() {
        let mut histogram = Histogram::default();
        for ms in [0, 5, 6, 10_000, 10_001] {
            histogram.observe(ms);
        }
        assert_eq!(
            histogram.buckets.get(&5),
            Some(&2),
            "0 and 5 ms: le is inclusive"
        );
        assert_eq!(histogram.buckets.get(&10), Some(&1));
        assert_eq!(histogram.buckets.get(&10_000), Some(&1));
        assert_eq!(histogram.count, 5, "10001 ms is only in +Inf");
        assert_eq!(histogram.sum_ms, 20_012);
        let cumulative = histogram.cumulative();
        assert_eq!(cumulative.first(), Some(&(5, 2)));
        assert_eq!(cumulative.last(), Some(&(10_000, 4)));
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut totals = Metrics::default();
        totals.observe_request("/api/ping", 200, 3);
        totals.record(Event::Refresh);
        let mut delta = Metrics::default();
        delta.observe_request("/api/ping", 200, 30);
        delta.observe_request("/api/ping", 404, 1);
        delta.record(Event::Refresh);
        totals.merge(&delta);
        assert_eq!(
            totals.value(
                Counter::HttpRequests,
                &[("route", "/api/ping"), ("status", "200")]
            ),
            2
        );
        assert_eq!(
            totals.value(
                Counter::HttpRequests,
                &[("route", "/api/ping"), ("status", "404")]
            ),
            1
        );
        assert_eq!(totals.value(Counter::Refreshes, &[]), 2);
        let ping = totals.latency("/api/ping").unwrap();
        assert_eq!((ping.count, ping.sum_ms), (3, 34));
        assert_eq!(ping.buckets.get(&5), Some(&2));
        assert_eq!(ping.buckets.get(&50), Some(&1));
    }

    #[test]
    fn metrics_survive_a_json_round_trip() {
        let mut metrics = Metrics::default();
        metrics.observe_request("/api/v1/auth/login", 401, 42);
        metrics.record(Event::RateLimited { scope: "signup" });
        let text = serde_json::to_string(&metrics).unwrap();
        let back: Metrics = serde_json::from_str(&text).unwrap();
        assert_eq!(back, metrics);
        let empty: Metrics = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn rendering_is_the_prometheus_text_format() {
        let mut metrics = Metrics::default();
        metrics.observe_request("/api/ping", 200, 7);
        metrics.observe_request("/api/ping", 200, 20_000);
        metrics.record(Event::LoginSuccess);
        let text = metrics.render();
        assert!(text.contains(
            "# HELP edge_auth_http_requests_total HTTP requests answered, by route pattern and status code.\n# TYPE edge_auth_http_requests_total counter\n"
        ));
        assert!(
            text.contains("edge_auth_http_requests_total{route=\"/api/ping\",status=\"200\"} 2\n")
        );
        assert!(text.contains("# TYPE edge_auth_http_request_duration_seconds histogram\n"));
        assert!(text.contains(
            "edge_auth_http_request_duration_seconds_bucket{route=\"/api/ping\",le=\"0.005\"} 0\n"
        ));
        assert!(text.contains(
            "edge_auth_http_request_duration_seconds_bucket{route=\"/api/ping\",le=\"0.01\"} 1\n"
        ));
        assert!(text.contains(
            "edge_auth_http_request_duration_seconds_bucket{route=\"/api/ping\",le=\"10\"} 1\n"
        ));
        assert!(text.contains(
            "edge_auth_http_request_duration_seconds_bucket{route=\"/api/ping\",le=\"+Inf\"} 2\n"
        ));
        assert!(text
            .contains("edge_auth_http_request_duration_seconds_sum{route=\"/api/ping\"} 20.007\n"));
        assert!(
            text.contains("edge_auth_http_request_duration_seconds_count{route=\"/api/ping\"} 2\n")
        );
        assert!(text.contains("edge_auth_logins_total{result=\"failure\"} 0\n"));
        assert!(text.contains("edge_auth_logins_total{result=\"success\"} 1\n"));
        assert!(text.contains("edge_auth_signups_total 0\n"));
        assert!(text.contains("# TYPE edge_auth_rate_limited_total counter\n"));
        // Every family has HELP and TYPE, and every counter ends in _total.
        for counter in Counter::ALL {
            assert!(counter.name().starts_with("edge_auth_") && counter.name().ends_with("_total"));
            assert!(text.contains(&format!("# HELP {} ", counter.name())));
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let mut metrics = Metrics::default();
        metrics.record(Event::RateLimited {
            scope: "we\"ird\\\n",
        });
        assert!(metrics
            .render()
            .contains("edge_auth_rate_limited_total{scope=\"we\\\"ird\\\\\\n\"} 1\n"));
    }

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(10), "0.01");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(1_000), "1");
        assert_eq!(seconds(2_500), "2.5");
        assert_eq!(seconds(61_234), "61.234");
    }

    #[test]
    fn stored_bounds_that_are_no_longer_configured_still_render_cumulatively() {
        let mut histogram = Histogram::default();
        histogram.buckets.insert(7, 3);
        histogram.buckets.insert(10, 1);
        histogram.count = 5;
        let cumulative = histogram.cumulative();
        assert!(cumulative.contains(&(5, 0)));
        assert!(cumulative.contains(&(7, 3)));
        assert!(cumulative.contains(&(10, 4)));
        assert!(cumulative
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn a_batch_is_due_once_its_oldest_count_is_old_enough() {
        let mut batch = Batch::default();
        assert_eq!(batch.take_if_due(10_000, 5_000), None, "nothing pending");
        batch.record(Event::Signup, 1_000);
        batch.record(Event::Signup, 4_000);
        assert_eq!(batch.take_if_due(5_999, 5_000), None);
        let taken = batch.take_if_due(6_000, 5_000).unwrap();
        assert_eq!(taken.value(Counter::Signups, &[]), 2);
        assert!(batch.pending().is_empty());
        assert_eq!(
            batch.take_if_due(60_000, 5_000),
            None,
            "the batch is empty again"
        );
    }

    #[test]
    fn a_failed_flush_is_put_back_and_retried_after_an_interval() {
        let mut batch = Batch::default();
        batch.observe_request("/api/ping", 200, 1, 0);
        let taken = batch.take_if_due(5_000, 5_000).unwrap();
        batch.record(Event::Signup, 5_100);
        batch.restore(&taken, 5_200);
        assert_eq!(
            batch.take_if_due(10_199, 5_000),
            None,
            "no retry before an interval"
        );
        let retried = batch.take_if_due(10_200, 5_000).unwrap();
        assert_eq!(
            retried.value(
                Counter::HttpRequests,
                &[("route", "/api/ping"), ("status", "200")]
            ),
            1
        );
        assert_eq!(
            retried.value(Counter::Signups, &[]),
            1,
            "newer counts ride along"
        );
    }

    #[test]
    fn scrapes_need_the_token_when_one_is_set() {
        let digest = token_digest("s3cret-token");
        for environment in ["production", "development", "test"] {
            assert_eq!(
                scrape_access(Some(&digest), Some("s3cret-token"), environment),
                ScrapeAccess::Allowed
            );
            assert_eq!(
                scrape_access(Some(&digest), Some("s3cret-tokeN"), environment),
                ScrapeAccess::Unauthorized
            );
            assert_eq!(
                scrape_access(Some(&digest), None, environment),
                ScrapeAccess::Unauthorized
            );
        }
    }

    #[test]
    fn without_a_token_scrapes_are_open_only_in_development_and_test() {
        assert_eq!(
            scrape_access(None, None, "development"),
            ScrapeAccess::Allowed
        );
        assert_eq!(scrape_access(None, None, "test"), ScrapeAccess::Allowed);
        assert_eq!(
            scrape_access(None, None, "production"),
            ScrapeAccess::Hidden
        );
        assert_eq!(
            scrape_access(None, Some("x"), "staging"),
            ScrapeAccess::Hidden
        );
    }
}
