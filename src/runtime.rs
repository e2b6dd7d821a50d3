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

/// Token signatures through WebCrypto: Ed25519 verification, and ECDSA P-256 and
/// RSASSA-PKCS1-v1_5 signing and verification. workerd implements them natively: an Ed25519
/// verify takes tens of microseconds where the pure-Rust one compiled to wasm takes several
/// hundred, and an RSA signature is far cheaper still than in wasm. Each imported key is
/// cached per isolate, so each operation is one call.
pub mod webcrypto {
    use crate::domain::keys::{Algorithm, PrivateKey, PublicKey};
    use js_sys::{Array, Object, Reflect, Uint8Array, JSON};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Crypto, CryptoKey, SubtleCrypto};

    thread_local! {
        /// Imported keys by `sign:<kid>` / `verify:<kid>` (a kid is a hash of the key).
        static KEYS: RefCell<HashMap<String, CryptoKey>> = RefCell::new(HashMap::new());
    }

    fn subtle() -> Result<SubtleCrypto, JsValue> {
        // workerd's global is not an `instanceof WorkerGlobalScope`, so read `crypto` off it.
        let crypto: Crypto = Reflect::get(&js_sys::global(), &"crypto".into())?.dyn_into()?;
        Ok(crypto.subtle())
    }

    fn object(members: &[(&str, &str)]) -> Result<Object, JsValue> {
        let object = Object::new();
        for (name, value) in members {
            Reflect::set(&object, &(*name).into(), &(*value).into())?;
        }
        Ok(object)
    }

    /// The algorithm object `importKey` takes.
    fn import_algorithm(algorithm: Algorithm) -> Result<Object, JsValue> {
        match algorithm {
            Algorithm::EdDSA => object(&[("name", "Ed25519")]),
            Algorithm::ES256 => object(&[("name", "ECDSA"), ("namedCurve", "P-256")]),
            Algorithm::RS256 => object(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")]),
        }
    }

    /// The algorithm object `sign` and `verify` take.
    fn operation_algorithm(algorithm: Algorithm) -> Result<Object, JsValue> {
        match algorithm {
            Algorithm::EdDSA => object(&[("name", "Ed25519")]),
            Algorithm::ES256 => object(&[("name", "ECDSA"), ("hash", "SHA-256")]),
            Algorithm::RS256 => object(&[("name", "RSASSA-PKCS1-v1_5")]),
        }
    }

    async fn cached(
        cache_key: String,
        import: impl FnOnce() -> Result<js_sys::Promise, JsValue>,
    ) -> Result<CryptoKey, JsValue> {
        if let Some(key) = KEYS.with(|keys| keys.borrow().get(&cache_key).cloned()) {
            return Ok(key);
        }
        let key: CryptoKey = JsFuture::from(import()?).await?.dyn_into()?;
        KEYS.with(|keys| keys.borrow_mut().insert(cache_key, key.clone()));
        Ok(key)
    }

    async fn verify_key(kid: &str, public: &PublicKey) -> Result<CryptoKey, JsValue> {
        let algorithm = public.algorithm();
        cached(format!("verify:{kid}"), || {
            let usages = Array::of1(&"verify".into());
            let subtle = subtle()?;
            match public.ed25519_bytes() {
                Some(raw) => subtle.import_key_with_object(
                    "raw",
                    &Uint8Array::from(raw),
                    &import_algorithm(algorithm)?,
                    false,
                    &usages,
                ),
                None => {
                    let jwk: Object = JSON::parse(&public.jwk().to_json(kid))?.dyn_into()?;
                    subtle.import_key_with_object(
                        "jwk",
                        &jwk,
                        &import_algorithm(algorithm)?,
                        false,
                        &usages,
                    )
                }
            }
        })
        .await
    }

    /// Whether `signature` is a valid signature of `message` by the key `kid`, with that
    /// key's one algorithm. An error means WebCrypto itself failed.
    pub async fn verify(
        kid: &str,
        public: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<bool, JsValue> {
        let key = verify_key(kid, public).await?;
        let promise = subtle()?.verify_with_object_and_u8_array_and_u8_array(
            &operation_algorithm(public.algorithm())?,
            &key,
            signature,
            message,
        )?;
        Ok(JsFuture::from(promise).await?.as_bool().unwrap_or(false))
    }

    /// Sign `message` with the private key `kid` (ES256: JWS's raw `R || S`, which is what
    /// WebCrypto returns; RS256: PKCS#1 v1.5; Ed25519: RFC 8032).
    /// The key is imported non-extractable, so it never leaves WebCrypto again.
    pub async fn sign(kid: &str, private: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, JsValue> {
        let algorithm = private.algorithm();
        let key = cached(format!("sign:{kid}"), || {
            let der = private
                .pkcs8_der()
                .ok_or_else(|| JsValue::from_str("no PKCS#8 form for this key"))?;
            subtle()?.import_key_with_object(
                "pkcs8",
                &Uint8Array::from(der.as_slice()),
                &import_algorithm(algorithm)?,
                false,
                &Array::of1(&"sign".into()),
            )
        })
        .await?;
        let promise = subtle()?.sign_with_object_and_u8_array(
            &operation_algorithm(algorithm)?,
            &key,
            message,
        )?;
        let signature = JsFuture::from(promise).await?;
        Ok(Uint8Array::new(&signature).to_vec())
    }
}
