//! Typed settings, read once per isolate from the Worker's vars and secrets.
//!
//! Every setting is documented in the README's configuration reference. Numeric settings
//! have safe defaults; the signing key, issuer, audience and allowed hosts have none: a
//! Worker without them answers every request with a configuration error (fail closed)
//! rather than minting tokens nobody can verify or answering for any host.

use crate::domain::password::{HashParams, PasswordHasherConfig, PasswordPolicy};
use crate::domain::session::SessionPolicy;
use crate::domain::token::{KeySet, TokenSettings};
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

/// A setting that is missing or unreadable. The message names the setting, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// All settings of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ENVIRONMENT`: `development` or `production` (default).
    pub environment: String,
    /// Token issuer, audience, lifetime and leeway.
    pub tokens: TokenSettings,
    /// `JWT_SIGNING_KEY` (+ `JWT_VERIFY_KEYS`).
    pub keys: KeySet,
    /// `SESSION_IDLE_TTL_SECONDS`, `SESSION_MAX_LIFETIME_SECONDS`, `REFRESH_GRACE_SECONDS`.
    pub sessions: SessionPolicy,
    /// `ARGON2_*`.
    pub hasher: PasswordHasherConfig,
    /// `PASSWORD_MIN_LENGTH`, `PASSWORD_MAX_LENGTH`.
    pub password_policy: PasswordPolicy,
    /// `ALLOWED_HOSTS`.
    pub allowed_hosts: Vec<HostPattern>,
    /// `ALLOWED_ORIGINS`.
    pub allowed_origins: AllowedOrigins,
    /// `MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `RATE_LIMIT_LOGIN`: per client IP.
    pub login_rate_limit: RateLimit,
    /// `RATE_LIMIT_SIGNUP`: per client IP.
    pub signup_rate_limit: RateLimit,
    /// `RATE_LIMIT_REFRESH`: per session.
    pub refresh_rate_limit: RateLimit,
    /// `AUDIT_RETENTION_DAYS`: audit entries older than this are pruned daily; 0 keeps them.
    pub audit_retention_days: u32,
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
        let login_rate_limit = reader.rate_limit(
            "RATE_LIMIT_LOGIN",
            RateLimit {
                limit: 10,
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

        let signing_key = reader.required("JWT_SIGNING_KEY");
        let verify_keys = reader.optional("JWT_VERIFY_KEYS");
        let verify_list: Vec<&str> = split_list(&verify_keys).collect();
        let keys = if signing_key.is_empty() {
            None
        } else {
            KeySet::from_config(&signing_key, &verify_list)
                .map_err(|error| reader.errors.push(error.to_string()))
                .ok()
        };
        let hasher = PasswordHasherConfig::new(params)
            .map_err(|_| {
                reader
                    .errors
                    .push("ARGON2_* parameters are not accepted by argon2".into())
            })
            .ok();

        match (keys, hasher) {
            (Some(keys), Some(hasher)) if reader.errors.is_empty() => Ok(Config {
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
                login_rate_limit,
                signup_rate_limit,
                refresh_rate_limit,
                audit_retention_days,
            }),
            _ => Err(ConfigError(reader.errors.join("; "))),
        }
    }

    pub fn is_development(&self) -> bool {
        self.environment == "development"
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
        ])
    }

    #[test]
    fn minimal_settings_give_secure_defaults() {
        let config = Config::from_source(&Map(minimal())).unwrap();
        assert_eq!(config.environment, "production");
        assert_eq!(config.tokens.ttl_seconds, 900);
        assert_eq!(config.hasher.params(), HashParams::default());
        assert_eq!(config.password_policy, PasswordPolicy::default());
        assert_eq!(config.max_body_bytes, 65_536);
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
