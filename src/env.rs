//! Settings from the Worker's `Env`, parsed once per isolate.
//!
//! Parsing keys and settings on every request would be wasted work; an isolate's bindings
//! do not change while it lives. A failed parse is not cached, so fixing a secret takes
//! effect on the next request.

use crate::config::{Config, ConfigError, DatabaseKind, SettingSource, HYPERDRIVE_BINDING};
use std::cell::RefCell;
use std::rc::Rc;
use worker::Env;

struct EnvSource<'a>(&'a Env);

impl SettingSource for EnvSource<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .var(name)
            .map(|value| value.to_string())
            .or_else(|_| self.0.secret(name).map(|value| value.to_string()))
            .ok()
    }
}

thread_local! {
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// The isolate's configuration, parsed on first use.
pub fn config(env: &Env) -> Result<Rc<Config>, ConfigError> {
    if let Some(config) = CONFIG.with(|cell| cell.borrow().clone()) {
        return Ok(config);
    }
    let config = Config::from_source(&EnvSource(env))?;
    // Fail closed: a database choice without its binding is a configuration error, not an
    // outage to retry.
    if config.database == DatabaseKind::Postgres && env.hyperdrive(HYPERDRIVE_BINDING).is_err() {
        return Err(ConfigError(format!(
            "DATABASE=postgres needs the Hyperdrive binding {HYPERDRIVE_BINDING}"
        )));
    }
    let config = Rc::new(config);
    CONFIG.with(|cell| *cell.borrow_mut() = Some(config.clone()));
    Ok(config)
}
