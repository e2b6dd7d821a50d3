//! The flows of the service, written against the storage traits (`store::traits`): no
//! `worker` types and no HTTP. Handlers read the request, call a flow, and render what it
//! returns; time, ids and the request's origin come in as arguments, so every flow runs in
//! a native unit test against the in-memory store.
//!
//! What a flow needs besides storage (logs, counters, budgets, mail, the breach corpus)
//! comes through [`ports::Edge`], which the edge implements per request.

pub mod accounts;
pub mod auth;
pub mod email;
pub mod mfa;
pub mod mfa_gate;
pub mod oauth;
pub mod passkeys;
pub mod passwords;
pub mod ports;
pub mod profile;
pub mod sessions;

/// An account for the flows' tests: named after the last two characters of its id,
/// verified, created `created_at`, holding `roles`.
#[cfg(test)]
pub(crate) fn test_account(id: &str, roles: &[&str], created_at: i64) -> crate::domain::user::User {
    crate::domain::user::User {
        id: id.into(),
        username: format!("user_{}", &id[id.len() - 2..]),
        email: None,
        email_verified: true,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        created_at,
        updated_at: created_at,
        banned_at: None,
        banned_until: None,
        ban_reason: None,
        password_hash: String::new(),
        session_signed_in_at: None,
        session_level: None,
        mfa_enabled: false,
    }
}

/// Run a future to completion on the test thread. The in-memory store never waits, so a
/// future is ready after a poll or a few.
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
}

/// What the flows' tests run with: a configuration, and an edge that records what a flow
/// asked of it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::config::{Config, RateLimit, SettingSource};
    use crate::domain::audit::Origin;
    use crate::domain::metrics::Event;
    use crate::domain::rate_limit::Decision;
    use crate::error::ApiError;
    use crate::service::ports::{
        Device, Edge, Mail, ProviderClient, ProviderRequest, ProviderResponse,
    };
    use serde_json::Value;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    struct Settings(HashMap<String, String>);

    impl SettingSource for Settings {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    /// A valid configuration with cheap password hashing, changed by `overrides`.
    pub fn config(overrides: &[(&str, &str)]) -> Config {
        let mut settings: HashMap<String, String> = [
            ("JWT_ISSUER", "https://auth.example"),
            ("JWT_AUDIENCE", "example-app"),
            ("ALLOWED_HOSTS", "auth.example"),
            (
                "JWT_SIGNING_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            ),
            (
                "IDENTIFIER_DIGEST_KEY",
                "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
            ),
            ("ARGON2_MEMORY_KIB", "8"),
            ("ARGON2_ITERATIONS", "1"),
            ("PUBLIC_BASE_URL", "https://auth.example"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        for (name, value) in overrides {
            settings.insert((*name).to_owned(), (*value).to_owned());
        }
        match Config::from_source(&Settings(settings)) {
            Ok(config) => config,
            Err(error) => panic!("test configuration refused: {error}"),
        }
    }

    /// What a flow's test runs with: an in-memory store, a recording edge and a
    /// configuration.
    pub struct World {
        pub store: crate::store::memory::MemoryStore,
        pub edge: RecordingEdge,
        pub config: Config,
    }

    impl World {
        /// Empty storage and the test configuration changed by `overrides`.
        pub fn new(overrides: &[(&str, &str)]) -> Self {
            Self {
                store: Default::default(),
                edge: RecordingEdge::default(),
                config: config(overrides),
            }
        }

        /// What the flows take.
        pub fn deps(
            &self,
        ) -> crate::service::ports::Deps<'_, crate::store::memory::MemoryStore, RecordingEdge>
        {
            crate::service::ports::Deps {
                store: &self.store,
                edge: &self.edge,
                config: &self.config,
            }
        }
    }

    /// An edge that records events, counters and mail, and keeps its own budgets.
    #[derive(Default)]
    pub struct RecordingEdge {
        pub events: RefCell<Vec<(String, Value)>>,
        pub warnings: RefCell<Vec<String>>,
        pub counts: RefCell<Vec<String>>,
        pub mail: RefCell<Vec<Mail>>,
        pub user: RefCell<Option<String>>,
        pub budgets: RefCell<HashMap<String, u32>>,
        /// The breach corpus' answer for every prefix; `None`: unreachable.
        pub breach_range: RefCell<Option<String>>,
        pub refused_budgets: Cell<u32>,
    }

    impl RecordingEdge {
        /// The names of the security events, in order.
        pub fn event_names(&self) -> Vec<String> {
            self.events
                .borrow()
                .iter()
                .map(|(name, _)| name.clone())
                .collect()
        }
    }

    impl Edge for RecordingEdge {
        fn origin(&self) -> Origin {
            Origin {
                request_id: Some("request-1".into()),
                ip: Some("192.0.2.1".into()),
                colo: Some("AMS".into()),
            }
        }

        fn device(&self) -> Device {
            Device {
                user_agent: Some("test-agent".into()),
                colo: Some("AMS".into()),
                country: Some("NL".into()),
            }
        }

        fn security_event(&self, event: &str, fields: Value) {
            self.events.borrow_mut().push((event.into(), fields));
        }

        fn warn(&self, event: &str, _fields: Value) {
            self.warnings.borrow_mut().push(event.into());
        }

        fn count(&self, event: Event<'_>) {
            self.counts.borrow_mut().push(format!("{event:?}"));
        }

        fn set_user(&self, user_id: &str) {
            *self.user.borrow_mut() = Some(user_id.into());
        }

        async fn rate_limit_by(
            &self,
            scope: &str,
            dimension: &str,
            value: &str,
            budget: RateLimit,
        ) -> Result<(), ApiError> {
            let mut budgets = self.budgets.borrow_mut();
            let used = budgets
                .entry(format!("{scope}:{dimension}:{value}"))
                .or_insert(0);
            *used += 1;
            if *used > budget.limit {
                self.refused_budgets.set(self.refused_budgets.get() + 1);
                return Err(ApiError::RateLimited(u64::from(budget.period_seconds)));
            }
            Ok(())
        }

        fn apply_rate_limit(
            &self,
            _scope: &str,
            _dimension: &str,
            decision: Decision,
        ) -> Result<(), ApiError> {
            if decision.allowed {
                Ok(())
            } else {
                Err(ApiError::RateLimited(decision.retry_after_seconds))
            }
        }

        async fn send_mail(&self, mail: Mail) -> Result<(), ApiError> {
            self.mail.borrow_mut().push(mail);
            Ok(())
        }

        async fn breach_range(&self, _prefix: &str) -> Result<String, String> {
            self.breach_range
                .borrow()
                .clone()
                .ok_or_else(|| "unreachable".to_owned())
        }
    }

    /// A sign-in provider that answers from a script, by method and URL, and keeps every
    /// request it was sent. An unscripted request is unreachable.
    #[derive(Default)]
    pub struct ScriptedProvider {
        pub answers: RefCell<HashMap<String, ProviderResponse>>,
        pub requests: RefCell<Vec<ProviderRequest>>,
    }

    impl ScriptedProvider {
        /// Answer `method url` with `status` and `body` from now on.
        pub fn answer(&self, method: &str, url: &str, status: u16, body: impl Into<String>) {
            self.answers.borrow_mut().insert(
                format!("{method} {url}"),
                ProviderResponse {
                    status,
                    body: body.into(),
                },
            );
        }

        /// The request sent to `method url` last.
        pub fn last(&self, method: &str, url: &str) -> Option<(Vec<(String, String)>, String)> {
            self.requests
                .borrow()
                .iter()
                .rev()
                .find(|request| request.method == method && request.url == url)
                .map(|request| {
                    let headers = request
                        .headers
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), value.clone()))
                        .collect();
                    (headers, request.form.clone().unwrap_or_default())
                })
        }
    }

    impl ProviderClient for ScriptedProvider {
        async fn send(&self, request: ProviderRequest) -> Result<ProviderResponse, String> {
            let key = format!("{} {}", request.method, request.url);
            self.requests.borrow_mut().push(request);
            self.answers
                .borrow()
                .get(&key)
                .cloned()
                .ok_or_else(|| "unreachable".to_owned())
        }
    }
}
