//! What the platform provides to handlers and Durable Objects alike: the clock and the CSPRNG.
//! Domain code never calls these; it receives their results as arguments.

use crate::error::ApiError;
use worker::Date;

/// Current time in unix seconds.
pub fn now_seconds() -> i64 {
    i64::try_from(Date::now().as_millis() / 1000).unwrap_or(i64::MAX)
}

/// Bytes from the platform CSPRNG (WebCrypto `getRandomValues` in workerd).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0_u8; N];
    getrandom::getrandom(&mut bytes).map_err(|error| ApiError::internal("random bytes", error))?;
    Ok(bytes)
}

/// Ed25519 signature checks through WebCrypto. workerd's native implementation verifies in
/// tens of microseconds where the pure-Rust one compiled to wasm takes several hundred; the
/// imported key is cached per isolate, so each verify is one call.
pub mod webcrypto {
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Crypto, CryptoKey, SubtleCrypto};

    thread_local! {
        static KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
    }

    fn subtle() -> Result<SubtleCrypto, JsValue> {
        // workerd's global is not an `instanceof WorkerGlobalScope`, so read `crypto` off it.
        let crypto: Crypto = Reflect::get(&js_sys::global(), &"crypto".into())?.dyn_into()?;
        Ok(crypto.subtle())
    }

    fn algorithm() -> Result<Object, JsValue> {
        let algorithm = Object::new();
        Reflect::set(&algorithm, &"name".into(), &"Ed25519".into())?;
        Ok(algorithm)
    }

    async fn key(kid: &str, public: &[u8]) -> Result<CryptoKey, JsValue> {
        if let Some(key) = KEYS.with(|keys| keys.borrow().get(kid).cloned()) {
            return Ok(key);
        }
        let usages = Array::of1(&"verify".into());
        let promise = subtle()?.import_key_with_object(
            "raw",
            &Uint8Array::from(public),
            &algorithm()?,
            false,
            &usages,
        )?;
        let key: CryptoKey = JsFuture::from(promise).await?.dyn_into()?;
        KEYS.with(|keys| keys.borrow_mut().insert(kid.to_owned(), key.clone()));
        Ok(key)
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` by the key `kid`
    /// (whose raw 32 bytes are `public`). An error means WebCrypto itself failed.
    pub async fn ed25519_verify(
        kid: &str,
        public: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, JsValue> {
        let key = key(kid, public).await?;
        let promise = subtle()?.verify_with_object_and_u8_array_and_u8_array(
            &algorithm()?,
            &key,
            signature,
            message,
        )?;
        Ok(JsFuture::from(promise).await?.as_bool().unwrap_or(false))
    }
}
