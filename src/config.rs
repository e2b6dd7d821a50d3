//! Typed settings, read once per isolate from the Worker's vars and secrets.
//!
//! Every setting is documented in the README's configuration reference. Numeric settings
//! have safe defaults; the signing key, the identifier digest key, issuer, audience and
//! allowed hosts have none: a Worker without them answers every request with a
//! configuration error (fail closed) rather than minting tokens nobody can verify or
//! answering for any host.

use crate::domain::lockout::LockoutPolicy;
use crate::domain::metrics::token_digest;
use crate::domain::oauth::OAuthSettings;
use crate::domain::password::{HashParams, PasswordHasherConfig, PasswordPolicy};
use crate::domain::secret::{keyed_digest, DIGEST_KEY_MIN_BYTES};
use crate::domain::session::SessionPolicy;
use crate::domain::token::{Algorithm, KeySet, TokenSettings};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::fmt;

/// Where a setting's raw text comes from: the Worker's `Env` in production, a map in tests.
pub trait SettingSource {
    /// The value of a var or secret, `None` when unset.
    fn get(&self, name: &str) -> Option<String>;
}

/// A request budget: at most `limit` requests per `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub period_seconds: u32,
}

impl RateLimit {
    /// Parse `"10/60"` (10 requests per 60 seconds).
    pub fn parse(text: &str) -> Option<Self> {
        let (limit, period) = text.trim().split_once('/')?;
        let limit: u32 = limit.trim().parse().ok()?;
        let period_seconds: u32 = period.trim().parse().ok()?;
        (limit > 0 && period_seconds > 0).then_some(Self {
            limit,
            period_seconds,
        })
    }
}

/// Which `Host` values the Worker answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain of the suffix (not the bare domain itself).
    Subdomains(String),
}

impl HostPattern {
    fn parse(text: &str) -> Self {
        let text = text.trim().to_ascii_lowercase();
        if text == "*" {
            HostPattern::Any
        } else if let Some(suffix) = text.strip_prefix("*.") {
            HostPattern::Subdomains(format!(".{suffix}"))
        } else {
            HostPattern::Exact(text)
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => host == *exact,
            HostPattern::Subdomains(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

/// Which browser origins may call the API (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    None,
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    fn parse(text: &str) -> Self {
        let origins: Vec<String> = split_list(text)
            .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if origins.is_empty() {
            AllowedOrigins::None
        } else if origins.iter().any(|origin| origin == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(origins)
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::None => false,
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server lacks it.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on a trusted network (and tests).
    None,
}

/// Where email goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailProvider {
    /// Nothing is sent (flows that need email still answer as usual; a log line says so).
    Disabled,
    /// Stored in D1 and listed at `/api/v1/dev/outbox` (development only).
    Outbox,
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        password: Option<String>,
    },
    /// JSON POST with a bearer key (Resend-style APIs, webhooks).
    Http { url: String, key: String },
    /// The `send_email` binding named `EMAIL`.
    Cloudflare,
}

/// Email settings.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub provider: EmailProvider,
    /// `EMAIL_FROM`: `Name <address>` or a bare address.
    pub from: String,
    /// `APP_NAME`: shown in messages and pages.
    pub app_name: String,
    /// `PUBLIC_BASE_URL`: where links in messages point (no trailing slash).
    pub public_base_url: String,
    /// `REQUIRE_EMAIL_VERIFICATION`.
    pub require_verification: bool,
    pub verify_ttl_seconds: i64,
    pub reset_ttl_seconds: i64,
    pub change_ttl_seconds: i64,
    /// `CODE_MAX_ATTEMPTS`: wrong codes before a token is spent.
    pub max_code_attempts: i64,
}

/// The optional Have I Been Pwned range check of new passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HibpSettings {
    /// `HIBP_CHECK`.
    pub enabled: bool,
    /// `HIBP_API_URL`, without a trailing slash; queries go to `{api_url}/range/{prefix}`.
    pub api_url: String,
}

/// A setting that is missing or unreadable. The message names the setting, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `DATABASE`: where the tables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// D1, the binding `DB` (the default).
    D1,
    /// PostgreSQL through the Hyperdrive binding [`HYPERDRIVE_BINDING`].
    Postgres,
}

impl DatabaseKind {
    /// The name `/api/health` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseKind::D1 => "d1",
            DatabaseKind::Postgres => "postgres",
        }
    }
}

/// The Hyperdrive binding's name in `wrangler.toml` when `DATABASE=postgres`.
pub const HYPERDRIVE_BINDING: &str = "HYPERDRIVE";

/// All settings of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE`: `d1` (default) or `postgres`.
    pub database: DatabaseKind,
    /// `ENVIRONMENT`: `development` or `production` (default).
    pub environment: String,
    /// Token issuer, audience, lifetime and leeway.
    pub tokens: TokenSettings,
    /// `JWT_ALGORITHM`, `JWT_SIGNING_KEY` (+ `JWT_VERIFY_KEYS`).
    pub keys: KeySet,
    /// `SESSION_IDLE_TTL_SECONDS`, `SESSION_MAX_LIFETIME_SECONDS`, `REFRESH_GRACE_SECONDS`.
    pub sessions: SessionPolicy,
    /// `ARGON2_*`.
    pub hasher: PasswordHasherConfig,
    /// `OAUTH_PROVIDERS`, `OAUTH_<NAME>_CLIENT_ID`, `_CLIENT_SECRET`, `_ISSUER`,
    /// `ALLOWED_REDIRECT_URLS` (see `domain::oauth`).
    pub oauth: OAuthSettings,
    /// `PASSWORD_MIN_LENGTH`, `PASSWORD_MAX_LENGTH`.
    pub password_policy: PasswordPolicy,
    /// `ALLOWED_HOSTS`.
    pub allowed_hosts: Vec<HostPattern>,
    /// `ALLOWED_ORIGINS`.
    pub allowed_origins: AllowedOrigins,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `REVOCATION_CACHE_SECONDS`: how long an isolate reuses a revocation-list answer.
    pub revocation_cache_seconds: u64,
    /// `MAX_HEADER_BYTES`: the sum of header names and values.
    pub max_header_bytes: usize,
    /// `RATE_LIMIT_LOGIN`: per client IP.
    pub login_rate_limit: RateLimit,
    /// `RATE_LIMIT_LOGIN_ACCOUNT`: per login identifier (account or not).
    pub login_account_rate_limit: RateLimit,
    /// `LOGIN_LOCKOUT_*`.
    pub lockout: LockoutPolicy,
    /// `HIBP_CHECK`, `HIBP_API_URL`.
    pub hibp: HibpSettings,
    /// `RATE_LIMIT_SIGNUP`: per client IP.
    pub signup_rate_limit: RateLimit,
    /// `RATE_LIMIT_REFRESH`: per session.
    pub refresh_rate_limit: RateLimit,
    /// `RATE_LIMIT_EMAIL`: reset and verification-resend requests per client IP.
    pub email_rate_limit: RateLimit,
    /// `RATE_LIMIT_VERIFY`: token and code submissions per client IP.
    pub verify_rate_limit: RateLimit,
    /// `RATE_LIMIT_OAUTH`: per client IP, for each of a provider sign-in's steps (start,
    /// callback, exchange, link) separately.
    pub oauth_rate_limit: RateLimit,
    pub email: EmailSettings,
    /// `WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME`, `WEBAUTHN_ORIGINS` (defaults from
    /// `PUBLIC_BASE_URL` and `APP_NAME`; see `domain::passkey::parse_relying_party`).
    /// `None`: passkeys are off (neither an RP ID nor a public URL is set), and their
    /// routes answer 404.
    pub webauthn: Option<crate::domain::webauthn::RelyingParty>,
    /// `AUDIT_RETENTION_DAYS`: audit entries older than this are pruned daily; 0 keeps them.
    pub audit_retention_days: u32,
    /// `METRICS_TOKEN` (secret), kept only as its SHA-256 digest: the bearer token `/metrics`
    /// requires. Without it, `/metrics` answers only in development and test.
    pub metrics_token_digest: Option<[u8; 32]>,
    /// `METRICS_FLUSH_SECONDS`: how long an isolate may hold counts before sending them to
    /// the aggregator (after a response, never per request).
    pub metrics_flush_seconds: u32,
    /// `REAUTH_SECONDS`: how long after a password sign-in a session may delete its account
    /// without sending the password again; 0 always asks for it.
    pub reauth_seconds: i64,
    /// `STEP_UP_SECONDS`: with a second factor enrolled, how long after the session last
    /// proved it a sensitive operation (password or email change, account deletion, removing
    /// the factor, new recovery codes, any admin route) may go ahead without proving it again.
    pub step_up_seconds: i64,
    /// `IDENTIFIER_DIGEST_KEY` (secret, base64 of at least 32 bytes): the HMAC key of the
    /// names rate limits and login failures are counted under. Debug output hides it.
    identifier_digest_key: DigestKey,
}

/// A secret HMAC key whose `Debug` form says nothing about it.
#[derive(Clone)]
struct DigestKey(Vec<u8>);

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

struct Reader<'a, S: SettingSource + ?Sized> {
    source: &'a S,
    errors: Vec<String>,
}

impl<S: SettingSource + ?Sized> Reader<'_, S> {
    fn required(&mut self, name: &str) -> String {
        match self
            .source
            .get(name)
            .filter(|value| !value.trim().is_empty())
        {
            Some(value) => value.trim().to_owned(),
            None => {
                self.errors.push(format!("{name} is not set"));
                String::new()
            }
        }
    }

    /// A secret key given as base64 or base64url of at least [`DIGEST_KEY_MIN_BYTES`] bytes.
    fn digest_key(&mut self, name: &str) -> DigestKey {
        let text = self.required(name);
        if text.is_empty() {
            return DigestKey(Vec::new());
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(&text));
        match decoded {
            Ok(bytes) if bytes.len() >= DIGEST_KEY_MIN_BYTES => DigestKey(bytes),
            _ => {
                self.errors.push(format!(
                    "{name} must be base64 of at least {DIGEST_KEY_MIN_BYTES} random bytes"
                ));
                DigestKey(Vec::new())
            }
        }
    }

    fn optional(&self, name: &str) -> String {
        self.source.get(name).unwrap_or_default().trim().to_owned()
    }

    fn number<T: std::str::FromStr + Copy + PartialOrd + fmt::Display>(
        &mut self,
        name: &str,
        default: T,
        min: T,
        max: T,
    ) -> T {
        let text = self.optional(name);
        if text.is_empty() {
            return default;
        }
        match text.parse::<T>() {
            Ok(value) if value >= min && value <= max => value,
            _ => {
                self.errors
                    .push(format!("{name} must be a number from {min} to {max}"));
                default
            }
        }
    }

    fn rate_limit(&mut self, name: &str, default: RateLimit) -> RateLimit {
        let text = self.optional(name);
        if text.is_empty() {
            return default;
        }
        RateLimit::parse(&text).unwrap_or_else(|| {
            self.errors
                .push(format!("{name} must look like LIMIT/SECONDS, e.g. 10/60"));
            default
        })
    }
}

impl<S: SettingSource + ?Sized> Reader<'_, S> {
    fn flag(&mut self, name: &str, default: bool) -> bool {
        match self.optional(name).to_ascii_lowercase().as_str() {
            "" => default,
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                self.errors.push(format!("{name} must be true or false"));
                default
            }
        }
    }

    fn email(&mut self, environment: &str) -> EmailSettings {
        let development = environment == "development";
        let provider_name = match self.optional("EMAIL_PROVIDER").to_ascii_lowercase() {
            name if name.is_empty() && development => "outbox".to_owned(),
            name if name.is_empty() => "none".to_owned(),
            name => name,
        };
        let provider = match provider_name.as_str() {
            "none" => EmailProvider::Disabled,
            "outbox" if development => EmailProvider::Outbox,
            "outbox" => {
                // The outbox keeps tokens readable in D1; outside development that would
                // hand out password resets.
                self.errors.push(
                    "EMAIL_PROVIDER=outbox is only allowed with ENVIRONMENT=development".into(),
                );
                EmailProvider::Disabled
            }
            "smtp" => {
                let security = match self.optional("SMTP_SECURITY").to_ascii_lowercase().as_str() {
                    "" | "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    "none" => SmtpSecurity::None,
                    _ => {
                        self.errors
                            .push("SMTP_SECURITY must be starttls, tls or none".into());
                        SmtpSecurity::StartTls
                    }
                };
                let default_port = if security == SmtpSecurity::Tls {
                    465
                } else {
                    587
                };
                let username = Some(self.optional("SMTP_USERNAME")).filter(|v| !v.is_empty());
                let password = Some(self.optional("SMTP_PASSWORD")).filter(|v| !v.is_empty());
                if username.is_some() != password.is_some() {
                    self.errors
                        .push("SMTP_USERNAME and SMTP_PASSWORD must be set together".into());
                }
                EmailProvider::Smtp {
                    host: self.required("SMTP_HOST"),
                    port: self.number("SMTP_PORT", default_port, 1, 65_535),
                    security,
                    username,
                    password,
                }
            }
            "http" => EmailProvider::Http {
                url: self.required("EMAIL_HTTP_URL"),
                key: self.required("EMAIL_HTTP_KEY"),
            },
            "cloudflare" => EmailProvider::Cloudflare,
            _ => {
                self.errors.push(
                    "EMAIL_PROVIDER must be one of none, outbox, smtp, http, cloudflare".into(),
                );
                EmailProvider::Disabled
            }
        };
        let sends = !matches!(provider, EmailProvider::Disabled);
        let from = match self.optional("EMAIL_FROM") {
            from if !from.is_empty() => from,
            _ if matches!(provider, EmailProvider::Outbox | EmailProvider::Disabled) => {
                "edge-auth <no-reply@localhost>".to_owned()
            }
            _ => self.required("EMAIL_FROM"),
        };
        let public_base_url = match self.optional("PUBLIC_BASE_URL") {
            url if !url.is_empty() => url.trim_end_matches('/').to_owned(),
            _ if sends => self.required("PUBLIC_BASE_URL"),
            _ => String::new(),
        };
        let absolute =
            public_base_url.starts_with("https://") || public_base_url.starts_with("http://");
        if !public_base_url.is_empty() && !absolute {
            self.errors
                .push("PUBLIC_BASE_URL must be an absolute http(s) URL".into());
        }
        let app_name = match self.optional("APP_NAME") {
            name if name.is_empty() => "edge-auth".to_owned(),
            name => name,
        };
        EmailSettings {
            provider,
            from,
            app_name,
            public_base_url,
            require_verification: self.flag("REQUIRE_EMAIL_VERIFICATION", false),
            verify_ttl_seconds: self.number("VERIFY_TOKEN_TTL_SECONDS", 86_400_i64, 60, 2_592_000),
            reset_ttl_seconds: self.number("RESET_TOKEN_TTL_SECONDS", 1_800_i64, 60, 86_400),
            change_ttl_seconds: self.number(
                "EMAIL_CHANGE_TOKEN_TTL_SECONDS",
                86_400_i64,
                60,
                2_592_000,
            ),
            max_code_attempts: self.number("CODE_MAX_ATTEMPTS", 5_i64, 1, 20),
        }
    }
}

impl Config {
    /// Read and validate every setting; all problems are reported together.
    pub fn from_source<S: SettingSource + ?Sized>(source: &S) -> Result<Self, ConfigError> {
        let mut reader = Reader {
            source,
            errors: Vec::new(),
        };
        let environment = match reader.optional("ENVIRONMENT").as_str() {
            "" => "production".to_owned(),
            other => other.to_ascii_lowercase(),
        };
        let issuer = reader.required("JWT_ISSUER");
        let audience = reader.required("JWT_AUDIENCE");
        let ttl_seconds = reader.number("ACCESS_TOKEN_TTL_SECONDS", 900_i64, 60, 86_400);
        let leeway_seconds = reader.number("JWT_LEEWAY_SECONDS", 30_i64, 0, 300);
        let sessions = SessionPolicy {
            idle_ttl_seconds: reader.number(
                "SESSION_IDLE_TTL_SECONDS",
                604_800_i64,
                300,
                31_536_000,
            ),
            max_lifetime_seconds: reader.number(
                "SESSION_MAX_LIFETIME_SECONDS",
                2_592_000_i64,
                300,
                31_536_000,
            ),
            refresh_grace_seconds: reader.number("REFRESH_GRACE_SECONDS", 10_i64, 0, 120),
        };
        let params = HashParams {
            memory_kib: reader.number("ARGON2_MEMORY_KIB", 19_456_u32, 8, 1_048_576),
            iterations: reader.number("ARGON2_ITERATIONS", 2_u32, 1, 64),
            parallelism: reader.number("ARGON2_PARALLELISM", 1_u32, 1, 16),
        };
        let password_policy = PasswordPolicy {
            min_chars: reader.number("PASSWORD_MIN_LENGTH", 8_usize, 1, 256),
            max_chars: reader.number("PASSWORD_MAX_LENGTH", 128_usize, 8, 256),
        };
        if password_policy.min_chars > password_policy.max_chars {
            reader
                .errors
                .push("PASSWORD_MIN_LENGTH must not exceed PASSWORD_MAX_LENGTH".into());
        }
        let allowed_hosts: Vec<HostPattern> = split_list(&reader.required("ALLOWED_HOSTS"))
            .map(HostPattern::parse)
            .collect();
        let allowed_origins = AllowedOrigins::parse(&reader.optional("ALLOWED_ORIGINS"));
        let max_body_bytes = reader.number("MAX_BODY_BYTES", 65_536_usize, 1_024, 1_048_576);
        let revocation_cache_seconds = reader.number("REVOCATION_CACHE_SECONDS", 5_u64, 0, 60);
        let max_header_bytes = reader.number("MAX_HEADER_BYTES", 8_192_usize, 1_024, 131_072);
        let login_rate_limit = reader.rate_limit(
            "RATE_LIMIT_LOGIN",
            RateLimit {
                limit: 10,
                period_seconds: 60,
            },
        );
        let login_account_rate_limit = reader.rate_limit(
            "RATE_LIMIT_LOGIN_ACCOUNT",
            RateLimit {
                limit: 10,
                period_seconds: 60,
            },
        );
        let lockout = LockoutPolicy {
            threshold: reader.number("LOGIN_LOCKOUT_THRESHOLD", 5_u32, 1, 1_000),
            window_seconds: reader.number("LOGIN_LOCKOUT_WINDOW_SECONDS", 900_i64, 1, 86_400),
            base_lockout_seconds: reader.number("LOGIN_LOCKOUT_SECONDS", 900_i64, 1, 86_400),
        };
        let hibp = HibpSettings {
            enabled: reader.flag("HIBP_CHECK", false),
            api_url: match reader.optional("HIBP_API_URL") {
                url if url.is_empty() => "https://api.pwnedpasswords.com".to_owned(),
                url => url.trim_end_matches('/').to_owned(),
            },
        };
        if !(hibp.api_url.starts_with("https://") || hibp.api_url.starts_with("http://")) {
            reader
                .errors
                .push("HIBP_API_URL must be an absolute http(s) URL".into());
        }
        let oauth_rate_limit = reader.rate_limit(
            "RATE_LIMIT_OAUTH",
            RateLimit {
                limit: 20,
                period_seconds: 60,
            },
        );
        let signup_rate_limit = reader.rate_limit(
            "RATE_LIMIT_SIGNUP",
            RateLimit {
                limit: 5,
                period_seconds: 60,
            },
        );
        let refresh_rate_limit = reader.rate_limit(
            "RATE_LIMIT_REFRESH",
            RateLimit {
                limit: 60,
                period_seconds: 60,
            },
        );
        let audit_retention_days = reader.number("AUDIT_RETENTION_DAYS", 90_u32, 0, 36_500);
        let metrics_token_digest = Some(reader.optional("METRICS_TOKEN"))
            .filter(|token| !token.is_empty())
            .map(|token| token_digest(&token));
        let metrics_flush_seconds = reader.number("METRICS_FLUSH_SECONDS", 5_u32, 1, 86_400);
        let reauth_seconds = reader.number("REAUTH_SECONDS", 300_i64, 0, 86_400);
        let step_up_seconds = reader.number("STEP_UP_SECONDS", 600_i64, 0, 86_400);
        let identifier_digest_key = reader.digest_key("IDENTIFIER_DIGEST_KEY");

        let email_rate_limit = reader.rate_limit(
            "RATE_LIMIT_EMAIL",
            RateLimit {
                limit: 5,
                period_seconds: 300,
            },
        );
        let verify_rate_limit = reader.rate_limit(
            "RATE_LIMIT_VERIFY",
            RateLimit {
                limit: 10,
                period_seconds: 60,
            },
        );
        let email = reader.email(&environment);
        // Fail closed: an origin that is not the RP's, or plain HTTP in production, stops
        // the service with the reason rather than starting with passkeys that cannot work
        // (or that accept a page the operator did not mean).
        let webauthn = match crate::domain::passkey::parse_relying_party(
            &|name| reader.source.get(name),
            &environment,
            &email.public_base_url,
            &email.app_name,
        ) {
            Ok(webauthn) => webauthn,
            Err(problems) => {
                reader.errors.extend(problems);
                None
            }
        };
        let database = match reader.optional("DATABASE").to_ascii_lowercase().as_str() {
            "" | "d1" => DatabaseKind::D1,
            "postgres" => DatabaseKind::Postgres,
            _ => {
                reader.errors.push("DATABASE must be d1 or postgres".into());
                DatabaseKind::D1
            }
        };

        let algorithm = match reader.optional("JWT_ALGORITHM").as_str() {
            "" => Some(Algorithm::EdDSA),
            name => Algorithm::parse(name).or_else(|| {
                reader
                    .errors
                    .push("JWT_ALGORITHM must be EdDSA, ES256 or RS256".into());
                None
            }),
        };
        let signing_key = reader.required("JWT_SIGNING_KEY");
        let verify_keys = reader.optional("JWT_VERIFY_KEYS");
        let keys = match algorithm {
            Some(algorithm) if !signing_key.is_empty() => {
                KeySet::from_config(algorithm, &signing_key, &verify_keys)
                    .map_err(|error| reader.errors.push(error.to_string()))
                    .ok()
            }
            _ => None,
        };
        // Fail closed: a provider configured wrongly stops the service with the reason,
        // rather than starting without it or with half of it.
        let oauth = match crate::domain::oauth::parse_settings(
            &|name| reader.source.get(name),
            &environment,
        ) {
            Ok(oauth) => oauth,
            Err(problems) => {
                reader.errors.extend(problems);
                OAuthSettings::default()
            }
        };
        if !oauth.providers.is_empty() && email.public_base_url.is_empty() {
            // The callback URL registered with each provider is built from it.
            reader
                .errors
                .push("PUBLIC_BASE_URL is required when OAUTH_PROVIDERS names a provider".into());
        }
        let hasher = PasswordHasherConfig::new(params)
            .map_err(|_| {
                reader
                    .errors
                    .push("ARGON2_* parameters are not accepted by argon2".into())
            })
            .ok();

        match (keys, hasher) {
            (Some(keys), Some(hasher)) if reader.errors.is_empty() => Ok(Config {
                database,
                environment,
                tokens: TokenSettings {
                    issuer,
                    audience,
                    ttl_seconds,
                    leeway_seconds,
                },
                keys,
                sessions,
                hasher,
                password_policy,
                allowed_hosts,
                allowed_origins,
                max_body_bytes,
                revocation_cache_seconds,
                max_header_bytes,
                login_rate_limit,
                login_account_rate_limit,
                lockout,
                hibp,
                signup_rate_limit,
                refresh_rate_limit,
                email_rate_limit,
                verify_rate_limit,
                oauth_rate_limit,
                email,
                webauthn,
                audit_retention_days,
                metrics_token_digest,
                metrics_flush_seconds,
                reauth_seconds,
                step_up_seconds,
                identifier_digest_key,
                oauth,
            }),
            _ => Err(ConfigError(reader.errors.join("; "))),
        }
    }

    pub fn is_development(&self) -> bool {
        self.environment == "development"
    }

    /// The name `value` is counted under in rate limits and login-failure counters (see
    /// [`keyed_digest`]).
    pub fn identifier_digest(&self, value: &str) -> String {
        keyed_digest(&self.identifier_digest_key.0, value)
    }

    /// The key TOTP secrets are sealed with at rest, derived from `IDENTIFIER_DIGEST_KEY`
    /// (see `domain::mfa`).
    pub fn totp_sealing_key(&self) -> crate::domain::mfa::SealingKey {
        crate::domain::mfa::SealingKey::derive(&self.identifier_digest_key.0)
    }

    /// Whether the service answers requests addressed to this host.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|pattern| pattern.matches(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);

    impl SettingSource for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|value| (*value).to_owned())
        }
    }

    fn minimal() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("JWT_ISSUER", "https://auth.example"),
            ("JWT_AUDIENCE", "example-app"),
            ("ALLOWED_HOSTS", "auth.example, *.example.net"),
            (
                "JWT_SIGNING_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            ),
            (
                "IDENTIFIER_DIGEST_KEY",
                "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
            ),
        ])
    }

    #[test]
    fn the_identifier_digest_key_is_required_and_long_enough() {
        let mut settings = minimal();
        settings.remove("IDENTIFIER_DIGEST_KEY");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(
            error.0.contains("IDENTIFIER_DIGEST_KEY is not set"),
            "{error}"
        );
        settings.insert("IDENTIFIER_DIGEST_KEY", "c2hvcnQ");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(
            error.0.contains("IDENTIFIER_DIGEST_KEY must be base64"),
            "{error}"
        );
        assert!(
            !error.0.contains("c2hvcnQ"),
            "the value is never echoed: {error}"
        );
        settings.insert("IDENTIFIER_DIGEST_KEY", "not base64 at all!");
        assert!(Config::from_source(&Map(settings)).is_err());
    }

    #[test]
    fn identifier_digests_are_keyed_by_the_configured_key() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        let mut other = minimal();
        other.insert(
            "IDENTIFIER_DIGEST_KEY",
            "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8",
        );
        let other = Config::from_source(&Map(other)).unwrap();
        assert_eq!(
            config.identifier_digest("alice"),
            config.identifier_digest("alice")
        );
        assert_ne!(
            config.identifier_digest("alice"),
            other.identifier_digest("alice")
        );
        assert!(!format!("{config:?}").contains("ICEiIyQl"));
        assert_eq!(config.reauth_seconds, 300);
        assert_eq!(config.step_up_seconds, 600);
    }

    #[test]
    fn the_database_is_d1_unless_postgres_is_chosen_and_nothing_else_is_accepted() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        assert_eq!(config.database, DatabaseKind::D1);
        let mut settings = minimal();
        settings.insert("DATABASE", "Postgres");
        let config = Config::from_source(&Map(settings.clone())).unwrap();
        assert_eq!(config.database, DatabaseKind::Postgres);
        assert_eq!(config.database.as_str(), "postgres");
        settings.insert("DATABASE", "mysql");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(
            error.0.contains("DATABASE must be d1 or postgres"),
            "{error}"
        );
    }

    #[test]
    fn minimal_settings_give_secure_defaults() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        assert_eq!(config.environment, "production");
        assert_eq!(config.tokens.ttl_seconds, 900);
        assert_eq!(config.hasher.params(), HashParams::default());
        assert_eq!(config.password_policy, PasswordPolicy::default());
        assert_eq!(config.max_body_bytes, 65_536);
        assert_eq!(config.revocation_cache_seconds, 5);
        assert_eq!(config.sessions, SessionPolicy::default());
        assert_eq!(config.allowed_origins, AllowedOrigins::None);
        assert_eq!(config.audit_retention_days, 90);
        assert_eq!(
            config.login_rate_limit,
            RateLimit {
                limit: 10,
                period_seconds: 60
            }
        );
        assert_eq!(config.login_account_rate_limit, config.login_rate_limit);
        assert_eq!(config.lockout, LockoutPolicy::default());
        assert_eq!(config.max_header_bytes, 8_192);
        assert_eq!(
            config.hibp,
            HibpSettings {
                enabled: false,
                api_url: "https://api.pwnedpasswords.com".into()
            }
        );
    }

    #[test]
    fn abuse_settings_are_read_and_checked() {
        let mut settings = minimal();
        settings.insert("RATE_LIMIT_LOGIN_ACCOUNT", "3/120");
        settings.insert("LOGIN_LOCKOUT_THRESHOLD", "7");
        settings.insert("LOGIN_LOCKOUT_WINDOW_SECONDS", "60");
        settings.insert("LOGIN_LOCKOUT_SECONDS", "30");
        settings.insert("HIBP_CHECK", "true");
        settings.insert("HIBP_API_URL", "http://127.0.0.1:9999/");
        settings.insert("MAX_HEADER_BYTES", "4096");
        let config = Config::from_source(&Map(settings.clone())).unwrap();
        assert_eq!(
            config.login_account_rate_limit,
            RateLimit {
                limit: 3,
                period_seconds: 120
            }
        );
        assert_eq!(
            config.lockout,
            LockoutPolicy {
                threshold: 7,
                window_seconds: 60,
                base_lockout_seconds: 30
            }
        );
        assert!(config.hibp.enabled);
        assert_eq!(config.hibp.api_url, "http://127.0.0.1:9999");
        assert_eq!(config.max_header_bytes, 4_096);
        settings.insert("LOGIN_LOCKOUT_THRESHOLD", "0");
        settings.insert("HIBP_API_URL", "api.pwnedpasswords.com");
        settings.insert("HIBP_CHECK", "maybe");
        settings.insert("MAX_HEADER_BYTES", "10");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        for name in [
            "LOGIN_LOCKOUT_THRESHOLD",
            "HIBP_API_URL",
            "HIBP_CHECK",
            "MAX_HEADER_BYTES",
        ] {
            assert!(error.0.contains(name), "{name}: {error}");
        }
    }

    #[test]
    fn metrics_settings_default_to_no_token_and_five_seconds() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        assert_eq!(config.metrics_token_digest, None);
        assert_eq!(config.metrics_flush_seconds, 5);
        let mut settings = minimal();
        settings.insert("METRICS_TOKEN", "  scrape-me  ");
        settings.insert("METRICS_FLUSH_SECONDS", "60");
        let config = Config::from_source(&Map(settings.clone())).unwrap();
        assert_eq!(config.metrics_token_digest, Some(token_digest("scrape-me")));
        assert_eq!(config.metrics_flush_seconds, 60);
        settings.insert("METRICS_TOKEN", "   ");
        settings.insert("METRICS_FLUSH_SECONDS", "0");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(error.0.contains("METRICS_FLUSH_SECONDS"), "{error}");
        settings.remove("METRICS_FLUSH_SECONDS");
        let blank = Config::from_source(&Map(settings)).unwrap();
        assert_eq!(
            blank.metrics_token_digest, None,
            "a blank token is no token"
        );
    }

    #[test]
    fn missing_secrets_fail_closed_naming_each_setting() {
        let mut settings = minimal();
        settings.remove("JWT_SIGNING_KEY");
        settings.remove("JWT_AUDIENCE");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(error.0.contains("JWT_SIGNING_KEY is not set"), "{error}");
        assert!(error.0.contains("JWT_AUDIENCE is not set"), "{error}");
    }

    #[test]
    fn malformed_values_are_errors_not_defaults() {
        let mut settings = minimal();
        settings.insert("JWT_SIGNING_KEY", "short");
        settings.insert("ACCESS_TOKEN_TTL_SECONDS", "fifteen minutes");
        settings.insert("RATE_LIMIT_LOGIN", "10 per minute");
        settings.insert("AUDIT_RETENTION_DAYS", "-1");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(
            error.0.contains("JWT_SIGNING_KEY must be base64"),
            "{error}"
        );
        assert!(error.0.contains("ACCESS_TOKEN_TTL_SECONDS"), "{error}");
        assert!(error.0.contains("RATE_LIMIT_LOGIN"), "{error}");
        assert!(error.0.contains("AUDIT_RETENTION_DAYS"), "{error}");
        assert!(!error.0.contains("short"), "values must not be echoed");
    }

    #[test]
    fn a_misconfigured_sign_in_provider_stops_the_service_without_echoing_its_secret() {
        let mut settings = minimal();
        settings.insert("OAUTH_PROVIDERS", "acme");
        settings.insert("OAUTH_ACME_CLIENT_ID", "client");
        settings.insert("OAUTH_ACME_CLIENT_SECRET", "very-secret-value");
        settings.insert("OAUTH_ACME_ISSUER", "http://id.acme.example");
        settings.insert("ALLOWED_REDIRECT_URLS", "https://app.example/done");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(
            error.0.contains("OAUTH_ACME_ISSUER: must be https://"),
            "{error}"
        );
        assert!(!error.0.contains("very-secret-value"), "{error}");
        settings.insert("OAUTH_ACME_ISSUER", "https://id.acme.example");
        // The callback URL registered with the provider is built from PUBLIC_BASE_URL.
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(error.0.contains("PUBLIC_BASE_URL is required"), "{error}");
        settings.insert("PUBLIC_BASE_URL", "https://auth.example");
        let config = Config::from_source(&Map(settings)).unwrap();
        assert_eq!(config.oauth.providers.len(), 1);
        assert!(config.oauth.allows_redirect("https://app.example/done"));
    }

    #[test]
    fn email_defaults_to_the_outbox_in_development_and_off_elsewhere() {
        let mut settings = minimal();
        let production = Config::from_source(&Map(settings.clone())).unwrap();
        assert_eq!(production.email.provider, EmailProvider::Disabled);
        assert!(!production.email.require_verification);
        settings.insert("ENVIRONMENT", "development");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(
            error.0.contains("PUBLIC_BASE_URL is not set"),
            "links need a base"
        );
        settings.insert("PUBLIC_BASE_URL", "http://127.0.0.1:8787");
        let development = Config::from_source(&Map(settings)).unwrap();
        assert_eq!(development.email.provider, EmailProvider::Outbox);
        assert_eq!(development.email.reset_ttl_seconds, 1_800);
        assert_eq!(development.email.verify_ttl_seconds, 86_400);
    }

    #[test]
    fn passkeys_follow_the_public_url_and_a_wrong_relying_party_stops_the_service() {
        let mut settings = minimal();
        assert_eq!(
            Config::from_source(&Map(settings.clone()))
                .unwrap()
                .webauthn,
            None
        );
        settings.insert("PUBLIC_BASE_URL", "https://auth.example.com");
        settings.insert("APP_NAME", "Example");
        let rp = Config::from_source(&Map(settings.clone()))
            .unwrap()
            .webauthn
            .unwrap();
        assert_eq!(
            (rp.id.as_str(), rp.name.as_str()),
            ("auth.example.com", "Example")
        );
        assert_eq!(rp.origins, ["https://auth.example.com"]);
        settings.insert("WEBAUTHN_ORIGINS", "https://evil.example");
        settings.insert("WEBAUTHN_RP_ID", "example.com");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(error.0.contains("WEBAUTHN_ORIGINS"), "{error}");
    }

    #[test]
    fn the_outbox_is_refused_outside_development() {
        let mut settings = minimal();
        settings.insert("EMAIL_PROVIDER", "outbox");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(
            error
                .0
                .contains("only allowed with ENVIRONMENT=development"),
            "{error}"
        );
    }

    #[test]
    fn smtp_needs_its_host_and_paired_credentials() {
        let mut settings = minimal();
        settings.insert("EMAIL_PROVIDER", "smtp");
        settings.insert("SMTP_USERNAME", "mailer");
        settings.insert("EMAIL_FROM", "Acme <no-reply@acme.test>");
        settings.insert("PUBLIC_BASE_URL", "https://auth.acme.test/");
        let error = Config::from_source(&Map(settings.clone())).unwrap_err();
        assert!(error.0.contains("SMTP_HOST is not set"), "{error}");
        assert!(
            error.0.contains("SMTP_USERNAME and SMTP_PASSWORD"),
            "{error}"
        );
        settings.insert("SMTP_HOST", "smtp.acme.test");
        settings.insert("SMTP_PASSWORD", "secret");
        let config = Config::from_source(&Map(settings)).unwrap();
        assert_eq!(config.email.public_base_url, "https://auth.acme.test");
        match config.email.provider {
            EmailProvider::Smtp { port, security, .. } => {
                assert_eq!(port, 587);
                assert_eq!(security, SmtpSecurity::StartTls);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sending_providers_need_a_sender_and_a_public_url() {
        let mut settings = minimal();
        settings.insert("EMAIL_PROVIDER", "http");
        settings.insert("EMAIL_HTTP_URL", "https://api.mail.test/send");
        settings.insert("EMAIL_HTTP_KEY", "k");
        let error = Config::from_source(&Map(settings)).unwrap_err();
        assert!(error.0.contains("EMAIL_FROM is not set"), "{error}");
        assert!(error.0.contains("PUBLIC_BASE_URL is not set"), "{error}");
    }

    #[test]
    fn hosts_match_exactly_or_by_subdomain_wildcard() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        assert!(config.host_allowed("auth.example"));
        assert!(config.host_allowed("AUTH.EXAMPLE"));
        assert!(config.host_allowed("api.example.net"));
        assert!(!config.host_allowed("example.net"));
        assert!(!config.host_allowed("evil.example"));
        assert!(!config.host_allowed("auth.example.evil.com"));
        assert!(!config.host_allowed("notexample.net"));
    }

    #[test]
    fn star_allows_any_host_only_when_chosen() {
        let mut settings = minimal();
        settings.insert("ALLOWED_HOSTS", "*");
        assert!(Config::from_source(&Map(settings))
            .unwrap()
            .host_allowed("anything.test"));
    }

    #[test]
    fn origins_are_listed_without_trailing_slash() {
        let mut settings = minimal();
        settings.insert(
            "ALLOWED_ORIGINS",
            "https://app.example/, https://admin.example",
        );
        let config = Config::from_source(&Map(settings)).unwrap();
        assert!(config.allowed_origins.allows("https://app.example"));
        assert!(config.allowed_origins.allows("https://admin.example"));
        assert!(!config.allowed_origins.allows("https://evil.example"));
    }

    #[test]
    fn rate_limits_parse_limit_over_seconds() {
        assert_eq!(
            RateLimit::parse(" 3 / 10 "),
            Some(RateLimit {
                limit: 3,
                period_seconds: 10
            })
        );
        assert_eq!(RateLimit::parse("0/10"), None);
        assert_eq!(RateLimit::parse("10"), None);
    }
}
