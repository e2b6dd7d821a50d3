//! Passkeys: registering one to a signed-in account, listing, renaming and deleting them,
//! and signing in with one without a password (a discoverable credential).
//!
//! Every ceremony starts with options carrying a fresh 256-bit challenge, stored only as a
//! digest with its purpose and account (5 minutes, `webauthn_challenges`). A response is
//! matched to its ceremony through the challenge its `clientDataJSON` answers: that
//! challenge is spent first (whatever comes next, it cannot be answered twice), and only
//! then is the response verified against it, the configured origins and the RP ID
//! (`domain::webauthn`). So a replayed response, or a second answer to one challenge,
//! finds nothing to spend.
//!
//! [`verify_assertion`] is the step "verify a passkey assertion", for an identified
//! account (a second factor or step-up, with options from [`authentication_options`] for
//! that account) or for nobody yet (passwordless): the MFA login step can call it as it
//! is. [`sign_in`] is the passwordless sign-in built on it.
//!
//! Sign-in decisions: user verification is required for a passwordless sign-in (the
//! passkey is then both factors) and asked for at registration; a sign counter that did
//! not move forward is logged (`passkey_counter_regressed`) and counted, not refused, as
//! WebAuthn §7.2 leaves it to the relying party and synced passkeys may legitimately
//! report zero; the per-account login lockout is not fed by passkey failures (there is no
//! secret to guess, and a stranger could otherwise lock an account out), while both
//! public endpoints are budgeted per client IP at the edge.

use crate::domain::audit::AuditAction;
use crate::domain::identity::Unlink;
use crate::domain::metrics::Event;
use crate::domain::passkey::{
    aaguid_text, challenge_digest, client_data_challenge, join_transports, passkey_name,
    user_handle, ChallengePurpose, Passkey, CEREMONY_TIMEOUT_MS, CHALLENGE_TTL_SECONDS,
};
use crate::domain::user::User;
use crate::domain::webauthn::{
    creation_options, request_options, verify_assertion as verify, verify_registration, Assertion,
    AssertionFlow, AuthenticationResponse, CredentialDescriptor, RegistrationResponse,
    RelyingParty, StoredCredential, UserEntity, UserVerification, CHALLENGE_BYTES,
};
use crate::error::ApiError;
use crate::runtime::random_bytes;
use crate::service::auth::{self, SignedIn};
use crate::service::ports::{Deps, Edge};
use crate::store::traits::{
    AuditStore, NewPasskey, PasskeyStore, PasskeyUse, SessionStore, UserStore,
};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use uuid::Uuid;

/// The answer to a refused passwordless sign-in: one for every reason, so a probe learns
/// nothing about which credentials or accounts exist.
pub const SIGN_IN_REFUSED: &str = "Passkey sign-in failed";

/// The relying party, or 404 when passkeys are off (no RP configured).
pub fn relying_party<'a, S, E: Edge>(deps: &Deps<'a, S, E>) -> Result<&'a RelyingParty, ApiError> {
    deps.config.webauthn.as_ref().ok_or(ApiError::NotFound)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// Draw a challenge and store its digest for `purpose` (and the account, when known).
async fn new_challenge<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    purpose: ChallengePurpose,
    user_id: Option<&str>,
    now: i64,
) -> Result<[u8; CHALLENGE_BYTES], ApiError> {
    let challenge = random_bytes::<CHALLENGE_BYTES>()?;
    deps.store
        .put_challenge(
            &challenge_digest(&challenge),
            purpose,
            user_id,
            now,
            now + CHALLENGE_TTL_SECONDS,
        )
        .await?;
    Ok(challenge)
}

/// Spend the challenge a response's client data answers: the account it was issued to
/// (`None` for a passwordless one) and the challenge, or why not.
async fn spend_challenge<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    client_data_json: &[u8],
    purpose: ChallengePurpose,
    now: i64,
) -> Result<Result<(Option<String>, Vec<u8>), &'static str>, ApiError> {
    let Some(challenge) = client_data_challenge(client_data_json) else {
        return Ok(Err("malformed_client_data"));
    };
    let spent = deps
        .store
        .take_challenge(&challenge_digest(&challenge), purpose, now)
        .await?;
    Ok(match spent {
        Some(spent) => Ok((spent.user_id, challenge)),
        None => Err("unknown_challenge"),
    })
}

/// Credential descriptors of stored passkeys (skipping any whose id does not decode).
fn descriptors(passkeys: &[Passkey]) -> Vec<(Vec<u8>, Vec<String>)> {
    passkeys
        .iter()
        .filter_map(|passkey| {
            unb64(&passkey.credential_id).map(|id| (id, passkey.transports.clone()))
        })
        .collect()
}

/// `PublicKeyCredentialCreationOptionsJSON` for registering a passkey to `user`: its
/// existing passkeys excluded, a discoverable credential, no attestation, user
/// verification preferred.
pub async fn registration_options<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    now: i64,
) -> Result<Value, ApiError> {
    let rp = relying_party(deps)?;
    // A new passkey is a new way in: with a second factor, only a stepped-up session adds one.
    crate::service::mfa_gate::require_step_up(deps, user, now)?;
    let existing = descriptors(&deps.store.passkeys_of(&user.id).await?);
    let exclude: Vec<CredentialDescriptor<'_>> = existing
        .iter()
        .map(|(id, transports)| CredentialDescriptor { id, transports })
        .collect();
    let challenge =
        new_challenge(deps, ChallengePurpose::Registration, Some(&user.id), now).await?;
    let handle = user_handle(&user.id);
    let name = user.email.as_deref().unwrap_or(&user.username);
    let entity = UserEntity {
        handle: &handle,
        name,
        display_name: &user.username,
    };
    Ok(creation_options(
        rp,
        &entity,
        &challenge,
        &exclude,
        UserVerification::Preferred,
        CEREMONY_TIMEOUT_MS,
    ))
}

/// Log and count a refused passkey operation; the error to answer with.
fn refused<E: Edge>(
    edge: &E,
    operation: &str,
    reason: &'static str,
    user_id: Option<&str>,
    error: ApiError,
) -> ApiError {
    edge.security_event(
        "passkey_refused",
        json!({ "operation": operation, "reason": reason, "user_id": user_id }),
    );
    edge.count(Event::Passkey {
        operation,
        result: "failure",
    });
    error
}

/// Register a passkey to `user` from the browser's `create()` response, answering a
/// challenge issued to this account by [`registration_options`]. Any failure is a 400
/// `invalid_passkey` (the check that failed goes to the log), except a name that is not
/// acceptable (422) and a credential registered already (409).
pub async fn register<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    name: Option<&str>,
    response: &Value,
    now: i64,
) -> Result<Passkey, ApiError> {
    let rp = relying_party(deps)?;
    crate::service::mfa_gate::require_step_up(deps, user, now)?;
    let name = passkey_name(name).map_err(|message| ApiError::invalid("name", message))?;
    let fail = |reason: &'static str| {
        refused(
            deps.edge,
            "register",
            reason,
            Some(&user.id),
            ApiError::InvalidPasskey(reason),
        )
    };
    let parsed = RegistrationResponse::from_value(response).map_err(|error| fail(error.code()))?;
    let (owner, challenge) = match spend_challenge(
        deps,
        &parsed.client_data_json,
        ChallengePurpose::Registration,
        now,
    )
    .await?
    {
        Ok(found) => found,
        Err(reason) => return Err(fail(reason)),
    };
    if owner.as_deref() != Some(user.id.as_str()) {
        return Err(fail("challenge_of_another_account"));
    }
    let credential = verify_registration(&parsed, &rp.expect(&challenge, false))
        .map_err(|error| fail(error.code()))?;
    let passkey = Passkey {
        id: Uuid::new_v4().to_string(),
        user_id: user.id.clone(),
        credential_id: b64(&credential.credential_id),
        public_key: b64(&credential.public_key),
        algorithm: credential.algorithm.id(),
        sign_count: i64::from(credential.sign_count),
        name,
        aaguid: aaguid_text(&credential.aaguid),
        backup_eligible: credential.backup_eligible,
        backed_up: credential.backed_up,
        transports: credential.transports.clone(),
        created_at: now,
        last_used_at: None,
    };
    let entry = deps
        .audit(AuditAction::PasskeyRegistered, now)
        .by_self(&user.id)
        .with("passkey_id", passkey.id.as_str())
        .with("aaguid", passkey.aaguid.as_str());
    let stored = deps
        .store
        .add_passkey(
            &NewPasskey {
                id: &passkey.id,
                user_id: &passkey.user_id,
                credential_id: &passkey.credential_id,
                public_key: &passkey.public_key,
                algorithm: passkey.algorithm,
                sign_count: passkey.sign_count,
                name: &passkey.name,
                aaguid: &passkey.aaguid,
                backup_eligible: passkey.backup_eligible,
                backed_up: passkey.backed_up,
                transports: &join_transports(&passkey.transports),
                now,
            },
            &entry,
        )
        .await;
    if let Err(error) = stored {
        let error = ApiError::from(error);
        if error == ApiError::PasskeyTaken {
            return Err(refused(
                deps.edge,
                "register",
                "credential_taken",
                Some(&user.id),
                error,
            ));
        }
        return Err(error);
    }
    deps.edge.count(Event::Passkey {
        operation: "register",
        result: "success",
    });
    Ok(passkey)
}

/// `PublicKeyCredentialRequestOptionsJSON` for an assertion. For an identified account
/// (`Some`: a second factor or step-up), its passkeys are allowed and the challenge is
/// bound to it; for nobody (`None`: passwordless), `allowCredentials` is empty, so the
/// browser offers every passkey it holds for the RP ID, and user verification is required.
pub async fn authentication_options<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: Option<&str>,
    now: i64,
) -> Result<Value, ApiError> {
    let rp = relying_party(deps)?;
    let existing = match user_id {
        Some(user_id) => descriptors(&deps.store.passkeys_of(user_id).await?),
        None => Vec::new(),
    };
    let allow: Vec<CredentialDescriptor<'_>> = existing
        .iter()
        .map(|(id, transports)| CredentialDescriptor { id, transports })
        .collect();
    let challenge = new_challenge(deps, ChallengePurpose::Authentication, user_id, now).await?;
    let verification = if user_id.is_some() {
        UserVerification::Preferred
    } else {
        UserVerification::Required
    };
    Ok(request_options(
        rp,
        &challenge,
        &allow,
        verification,
        CEREMONY_TIMEOUT_MS,
    ))
}

/// A verified assertion: the account, the passkey (as it was before this use) and what
/// the assertion showed.
#[derive(Debug)]
pub struct VerifiedPasskey {
    pub user: User,
    pub passkey: Passkey,
    pub assertion: Assertion,
}

/// Why an assertion was refused: a stable code for the log and metrics, and the account
/// when the credential named one. Never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionRefused {
    pub reason: &'static str,
    pub user_id: Option<String>,
}

fn refusal(reason: &'static str, user_id: Option<&str>) -> AssertionRefused {
    AssertionRefused {
        reason,
        user_id: user_id.map(str::to_owned),
    }
}

/// Verify a passkey assertion (`get()` response) against a challenge issued by
/// [`authentication_options`] for the same `user_id`: `Some(id)` checks that the passkey
/// is that account's (a second factor, step-up), `None` finds the account through the
/// passkey and requires the user handle and user verification (passwordless). On success
/// the passkey's use is recorded (its counter only moves forward) and a counter that did
/// not advance is logged and counted; the ban and the session are the caller's. The outer
/// error is a store outage; the inner one a refusal.
pub async fn verify_assertion<S: PasskeyStore + UserStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    response: &Value,
    user_id: Option<&str>,
    now: i64,
) -> Result<Result<VerifiedPasskey, AssertionRefused>, ApiError> {
    let rp = relying_party(deps)?;
    let parsed = match AuthenticationResponse::from_value(response) {
        Ok(parsed) => parsed,
        Err(error) => return Ok(Err(refusal(error.code(), user_id))),
    };
    let (owner, challenge) = match spend_challenge(
        deps,
        &parsed.client_data_json,
        ChallengePurpose::Authentication,
        now,
    )
    .await?
    {
        Ok(found) => found,
        Err(reason) => return Ok(Err(refusal(reason, user_id))),
    };
    if owner.as_deref() != user_id {
        return Ok(Err(refusal("challenge_of_another_account", user_id)));
    }
    let Some(passkey) = deps.store.find_passkey(&b64(&parsed.credential_id)).await? else {
        return Ok(Err(refusal("unknown_credential", user_id)));
    };
    if user_id.is_some_and(|user_id| user_id != passkey.user_id) {
        return Ok(Err(refusal("credential_of_another_account", user_id)));
    }
    let owner = Some(passkey.user_id.as_str());
    let (Some(public_key), Ok(sign_count)) = (
        unb64(&passkey.public_key),
        u32::try_from(passkey.sign_count),
    ) else {
        return Ok(Err(refusal("unreadable_credential", owner)));
    };
    let stored = StoredCredential {
        credential_id: parsed.credential_id.clone(),
        public_key,
        sign_count,
        backup_eligible: passkey.backup_eligible,
        user_handle: user_handle(&passkey.user_id),
    };
    let (flow, require_user_verification) = match user_id {
        Some(_) => (AssertionFlow::SecondFactor, false),
        None => (AssertionFlow::Passwordless, true),
    };
    let expected = rp.expect(&challenge, require_user_verification);
    let assertion = match verify(&parsed, &stored, &expected, flow) {
        Ok(assertion) => assertion,
        Err(error) => return Ok(Err(refusal(error.code(), owner))),
    };
    let Some(user) = deps.store.find_user(&passkey.user_id).await? else {
        return Ok(Err(refusal("account_gone", owner)));
    };
    deps.store
        .record_passkey_use(&PasskeyUse {
            passkey_id: &passkey.id,
            sign_count: i64::from(assertion.new_sign_count),
            backed_up: assertion.backed_up,
            now,
        })
        .await?;
    if assertion.counter_regressed {
        deps.edge.security_event(
            "passkey_counter_regressed",
            json!({
                "user_id": user.id,
                "passkey_id": passkey.id,
                "stored": passkey.sign_count,
            }),
        );
        deps.edge.count(Event::Passkey {
            operation: "sign_count",
            result: "regressed",
        });
    }
    Ok(Ok(VerifiedPasskey {
        user,
        passkey,
        assertion,
    }))
}

/// Sign in without a password: verify the assertion (passwordless), refuse a banned
/// account (after the proof, as a login does), and start a session with tokens. Every
/// refusal of the assertion itself is the same 401, logged and audited with its reason.
pub async fn sign_in<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    response: &Value,
    now: i64,
) -> Result<SignedIn, ApiError>
where
    S: PasskeyStore + UserStore + SessionStore + AuditStore,
{
    let verified = match verify_assertion(deps, response, None, now).await? {
        Ok(verified) => verified,
        Err(refusal) => {
            let error = ApiError::Unauthorized(SIGN_IN_REFUSED.into());
            return Err(login_refused(
                deps,
                refusal.reason,
                refusal.user_id.as_deref(),
                error,
                now,
            )
            .await);
        }
    };
    let user = verified.user;
    if let Some(detail) = user.ban_state(now).login_refusal() {
        let error = ApiError::Forbidden(detail);
        return Err(login_refused(deps, "banned", Some(&user.id), error, now).await);
    }
    let signed_in = auth::passkey_session(deps, user, &verified.passkey.id, now).await?;
    deps.edge.count(Event::Passkey {
        operation: "login",
        result: "success",
    });
    Ok(signed_in)
}

/// Record a refused passwordless sign-in (a security log line, counters and a
/// `user.login_failed` entry with `method: passkey`) and return the error to answer with.
async fn login_refused<S: AuditStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    reason: &'static str,
    user_id: Option<&str>,
    error: ApiError,
    now: i64,
) -> ApiError {
    let mut entry = deps
        .audit(AuditAction::LoginFailed, now)
        .with("reason", reason)
        .with("method", "passkey");
    if let Some(user_id) = user_id {
        entry = entry.on(user_id);
    }
    deps.edge.security_event(
        "login_failed",
        json!({ "reason": reason, "method": "passkey", "user_id": user_id }),
    );
    deps.edge.count(Event::LoginFailure);
    deps.edge.count(Event::Passkey {
        operation: "login",
        result: "failure",
    });
    match deps.store.record_audit(&entry).await {
        Ok(()) => error,
        Err(outage) => outage.into(),
    }
}

/// An account's passkeys, oldest first.
pub async fn list<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
) -> Result<Vec<Passkey>, ApiError> {
    relying_party(deps)?;
    Ok(deps.store.passkeys_of(user_id).await?)
}

/// Rename one of the caller's passkeys; 404 for one that is not the caller's.
pub async fn rename<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    passkey_id: &str,
    name: &str,
    now: i64,
) -> Result<Passkey, ApiError> {
    relying_party(deps)?;
    let name = passkey_name(Some(name)).map_err(|message| ApiError::invalid("name", message))?;
    if Uuid::parse_str(passkey_id).is_err() {
        return Err(ApiError::NotFound);
    }
    let entry = deps
        .audit(AuditAction::PasskeyRenamed, now)
        .by_self(user_id)
        .with("passkey_id", passkey_id);
    let renamed = deps
        .store
        .rename_passkey(user_id, passkey_id, &name, &entry)
        .await?
        .ok_or(ApiError::NotFound)?;
    deps.edge.count(Event::Passkey {
        operation: "rename",
        result: "success",
    });
    Ok(renamed)
}

/// Delete one of the caller's passkeys; refused (409 `last_sign_in_method`) when it is
/// the account's last way to sign in, 404 for one that is not the caller's.
pub async fn delete<S: PasskeyStore, E: Edge>(
    deps: &Deps<'_, S, E>,
    user_id: &str,
    passkey_id: &str,
    now: i64,
) -> Result<(), ApiError> {
    relying_party(deps)?;
    if Uuid::parse_str(passkey_id).is_err() {
        return Err(ApiError::NotFound);
    }
    let entry = deps
        .audit(AuditAction::PasskeyDeleted, now)
        .by_self(user_id)
        .with("passkey_id", passkey_id);
    match deps
        .store
        .delete_passkey(user_id, passkey_id, &entry)
        .await?
    {
        Unlink::Unlinked => {
            deps.edge.count(Event::Passkey {
                operation: "delete",
                result: "success",
            });
            Ok(())
        }
        Unlink::NotFound => Err(ApiError::NotFound),
        Unlink::LastSignInMethod => Err(refused(
            deps.edge,
            "delete",
            "last_sign_in_method",
            Some(user_id),
            ApiError::LastSignInMethod,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::keys::PrivateKey;
    use crate::domain::password::NO_PASSWORD;
    use crate::service::block_on;
    use crate::service::testing::World;
    use ciborium::value::Value as Cbor;
    use sha2::{Digest, Sha256};
    use std::cell::Cell;

    const ORIGIN: &str = "https://auth.example";
    const ANN: &str = "00000000-0000-4000-8000-000000000001";
    const BOB: &str = "00000000-0000-4000-8000-000000000002";

    /// A software authenticator (Ed25519) holding one discoverable credential, answering
    /// options as a browser and a platform authenticator would.
    struct Device {
        key: PrivateKey,
        credential_id: Vec<u8>,
        /// The user handle stored at registration, returned by assertions.
        user_handle: std::cell::RefCell<Vec<u8>>,
        counter: Cell<u32>,
        origin: std::cell::RefCell<String>,
    }

    fn cbor(value: &Cbor) -> Vec<u8> {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(value, &mut bytes).unwrap();
        bytes
    }

    impl Device {
        fn new(seed: u8) -> Self {
            Device {
                key: PrivateKey::Ed25519(ed25519_compact::KeyPair::from_seed(
                    ed25519_compact::Seed::new([seed; 32]),
                )),
                credential_id: vec![seed; 16],
                user_handle: Default::default(),
                counter: Cell::new(0),
                origin: std::cell::RefCell::new(ORIGIN.into()),
            }
        }

        fn cose_key(&self) -> Vec<u8> {
            let x = unb64(&self.key.public().jwk().x.unwrap()).unwrap();
            let int = |value: i64| Cbor::Integer(value.into());
            cbor(&Cbor::Map(vec![
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), Cbor::Bytes(x)),
            ]))
        }

        fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
            serde_json::to_vec(&json!({
                "type": kind,
                "challenge": options["challenge"],
                "origin": *self.origin.borrow(),
                "crossOrigin": false,
            }))
            .unwrap()
        }

        fn authenticator_data(&self, rp_id: &str, attested: bool) -> Vec<u8> {
            let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
            data.push(if attested { 0x45 } else { 0x05 });
            data.extend_from_slice(&self.counter.get().to_be_bytes());
            if attested {
                data.extend_from_slice(&[0; 16]);
                data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
                data.extend_from_slice(&self.credential_id);
                data.extend_from_slice(&self.cose_key());
            }
            data
        }

        /// `create()`'s response to creation options.
        fn create(&self, options: &Value) -> Value {
            *self.user_handle.borrow_mut() =
                unb64(options["user"]["id"].as_str().unwrap()).unwrap();
            let client_data = self.client_data("webauthn.create", options);
            let data = self.authenticator_data(options["rp"]["id"].as_str().unwrap(), true);
            let text = |value: &str| Cbor::Text(value.into());
            let object = cbor(&Cbor::Map(vec![
                (text("fmt"), text("none")),
                (text("attStmt"), Cbor::Map(vec![])),
                (text("authData"), Cbor::Bytes(data)),
            ]));
            json!({
                "id": b64(&self.credential_id),
                "rawId": b64(&self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(&client_data),
                    "attestationObject": b64(&object),
                    "transports": ["internal"],
                },
            })
        }

        /// `get()`'s response to request options; the counter moves on by one.
        fn get(&self, options: &Value) -> Value {
            self.counter.set(self.counter.get() + 1);
            let client_data = self.client_data("webauthn.get", options);
            let data = self.authenticator_data(options["rpId"].as_str().unwrap(), false);
            let mut message = data.clone();
            message.extend_from_slice(&Sha256::digest(&client_data));
            let signature = self.key.sign(&message).unwrap();
            json!({
                "id": b64(&self.credential_id),
                "rawId": b64(&self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(&client_data),
                    "authenticatorData": b64(&data),
                    "signature": b64(&signature),
                    "userHandle": b64(&self.user_handle.borrow()),
                },
            })
        }
    }

    fn world() -> World {
        let world = World::new(&[]);
        for (id, hash) in [
            (ANN, "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"),
            (BOB, NO_PASSWORD),
        ] {
            let mut user = crate::service::test_account(id, &["user"], 1);
            user.password_hash = hash.into();
            world.store.users.borrow_mut().push(user);
        }
        world
    }

    fn user(world: &World, id: &str) -> User {
        world
            .store
            .users
            .borrow()
            .iter()
            .find(|user| user.id == id)
            .cloned()
            .unwrap()
    }

    /// Register `device` to account `id`.
    fn enrol(world: &World, id: &str, device: &Device, name: Option<&str>) -> Passkey {
        let deps = world.deps();
        let user = user(world, id);
        let options = block_on(registration_options(&deps, &user, 100)).unwrap();
        block_on(register(&deps, &user, name, &device.create(&options), 101)).unwrap()
    }

    fn passwordless_options(world: &World) -> Value {
        block_on(authentication_options(&world.deps(), None, 200)).unwrap()
    }

    fn actions(world: &World) -> Vec<&'static str> {
        world
            .store
            .audit
            .borrow()
            .iter()
            .map(|entry| entry.action.as_str())
            .collect()
    }

    #[test]
    fn a_registered_passkey_signs_in_without_a_password() {
        let world = world();
        let device = Device::new(7);
        let options =
            block_on(registration_options(&world.deps(), &user(&world, ANN), 100)).unwrap();
        assert_eq!(options["rp"]["id"], "auth.example");
        assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(options["attestation"], "none");
        assert_eq!(options["user"]["id"], b64(&user_handle(ANN)));
        let passkey = enrol(&world, ANN, &device, Some("  Laptop "));
        assert_eq!(passkey.name, "Laptop");
        assert_eq!(passkey.credential_id, b64(&device.credential_id));
        assert_eq!(passkey.algorithm, -8);
        assert_eq!(passkey.transports, ["internal"]);
        assert_eq!(
            block_on(list(&world.deps(), ANN)).unwrap(),
            std::slice::from_ref(&passkey)
        );

        let options = passwordless_options(&world);
        assert_eq!(options["allowCredentials"], json!([]));
        assert_eq!(options["userVerification"], "required");
        let signed_in = block_on(sign_in(&world.deps(), &device.get(&options), 201)).unwrap();
        assert_eq!(signed_in.user.id, ANN);
        assert!(!signed_in.access_token.is_empty());
        let stored = block_on(list(&world.deps(), ANN)).unwrap();
        assert_eq!(stored[0].sign_count, 1);
        assert_eq!(stored[0].last_used_at, Some(201));
        assert_eq!(
            actions(&world),
            ["passkey.registered", "user.passkey_login"]
        );
        let counts = world.edge.counts.borrow().join(" ");
        assert!(
            counts.contains("operation: \"register\", result: \"success\""),
            "{counts}"
        );
        assert!(
            counts.contains("operation: \"login\", result: \"success\""),
            "{counts}"
        );
        assert!(counts.contains("LoginSuccess"), "{counts}");
    }

    #[test]
    fn a_challenge_is_answered_once_whatever_the_answer() {
        let world = world();
        let device = Device::new(7);
        let ann = user(&world, ANN);
        let options = block_on(registration_options(&world.deps(), &ann, 100)).unwrap();
        let response = device.create(&options);
        block_on(register(&world.deps(), &ann, None, &response, 101)).unwrap();
        // The same response again: its challenge is spent.
        let replay = block_on(register(&world.deps(), &ann, None, &response, 102));
        assert_eq!(
            replay.unwrap_err(),
            ApiError::InvalidPasskey("unknown_challenge")
        );

        let options = passwordless_options(&world);
        let assertion = device.get(&options);
        block_on(sign_in(&world.deps(), &assertion, 201)).unwrap();
        let replay = block_on(sign_in(&world.deps(), &assertion, 202)).unwrap_err();
        assert_eq!(replay, ApiError::Unauthorized(SIGN_IN_REFUSED.into()));
        assert_eq!(actions(&world).last(), Some(&"user.login_failed"));

        // A wrong answer burns the challenge too: the right one then finds nothing.
        let options = passwordless_options(&world);
        *device.origin.borrow_mut() = "https://evil.example".into();
        assert!(block_on(sign_in(&world.deps(), &device.get(&options), 203)).is_err());
        *device.origin.borrow_mut() = ORIGIN.into();
        assert!(block_on(sign_in(&world.deps(), &device.get(&options), 204)).is_err());
        // Expired after five minutes.
        let options = passwordless_options(&world);
        let late = block_on(sign_in(&world.deps(), &device.get(&options), 200 + 300));
        assert!(late.is_err());
        let reasons: Vec<String> = world
            .edge
            .events
            .borrow()
            .iter()
            .filter(|(name, _)| name == "login_failed")
            .map(|(_, fields)| fields["reason"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            reasons,
            [
                "unknown_challenge",
                "origin_not_allowed",
                "unknown_challenge",
                "unknown_challenge"
            ]
        );
    }

    #[test]
    fn a_response_for_another_origin_or_rp_is_refused() {
        let world = world();
        let device = Device::new(7);
        let ann = user(&world, ANN);
        let options = block_on(registration_options(&world.deps(), &ann, 100)).unwrap();
        *device.origin.borrow_mut() = "https://auth.example.evil".into();
        let refused = block_on(register(
            &world.deps(),
            &ann,
            None,
            &device.create(&options),
            101,
        ));
        assert_eq!(
            refused.unwrap_err(),
            ApiError::InvalidPasskey("origin_not_allowed")
        );
        *device.origin.borrow_mut() = ORIGIN.into();
        let mut options = block_on(registration_options(&world.deps(), &ann, 100)).unwrap();
        options["rp"]["id"] = json!("example.org");
        let refused = block_on(register(
            &world.deps(),
            &ann,
            None,
            &device.create(&options),
            101,
        ));
        assert_eq!(
            refused.unwrap_err(),
            ApiError::InvalidPasskey("rp_id_mismatch")
        );
        assert!(world.store.passkeys.borrow().is_empty());
        assert!(actions(&world).is_empty());
    }

    #[test]
    fn challenges_are_bound_to_their_purpose_and_account() {
        let world = world();
        let device = Device::new(7);
        let (ann, bob) = (user(&world, ANN), user(&world, BOB));
        // Bob's registration options answered in Ann's request.
        let options = block_on(registration_options(&world.deps(), &bob, 100)).unwrap();
        let refused = block_on(register(
            &world.deps(),
            &ann,
            None,
            &device.create(&options),
            101,
        ));
        assert_eq!(
            refused.unwrap_err(),
            ApiError::InvalidPasskey("challenge_of_another_account")
        );
        // A sign-in challenge is not a registration one.
        let options = passwordless_options(&world);
        let mut creation = block_on(registration_options(&world.deps(), &ann, 100)).unwrap();
        creation["challenge"] = options["challenge"].clone();
        let refused = block_on(register(
            &world.deps(),
            &ann,
            None,
            &device.create(&creation),
            101,
        ));
        assert_eq!(
            refused.unwrap_err(),
            ApiError::InvalidPasskey("unknown_challenge")
        );
        enrol(&world, ANN, &device, None);
        // A second factor for Bob with Ann's passkey; Ann's own works.
        let options = block_on(authentication_options(&world.deps(), Some(BOB), 200)).unwrap();
        let refused = block_on(verify_assertion(
            &world.deps(),
            &device.get(&options),
            Some(BOB),
            201,
        ));
        assert_eq!(
            refused.unwrap().unwrap_err().reason,
            "credential_of_another_account"
        );
        let options = block_on(authentication_options(&world.deps(), Some(ANN), 200)).unwrap();
        assert_eq!(
            options["allowCredentials"][0]["id"],
            b64(&device.credential_id)
        );
        let verified = block_on(verify_assertion(
            &world.deps(),
            &device.get(&options),
            Some(ANN),
            201,
        ));
        assert_eq!(verified.unwrap().unwrap().user.id, ANN);
        // A passwordless challenge does not serve a second factor, nor the reverse.
        let options = passwordless_options(&world);
        let refused = block_on(verify_assertion(
            &world.deps(),
            &device.get(&options),
            Some(ANN),
            201,
        ));
        assert_eq!(
            refused.unwrap().unwrap_err().reason,
            "challenge_of_another_account"
        );
        let options = block_on(authentication_options(&world.deps(), Some(ANN), 200)).unwrap();
        let refused = block_on(sign_in(&world.deps(), &device.get(&options), 201));
        assert_eq!(refused.unwrap_err().status(), 401);
    }

    #[test]
    fn an_existing_credential_is_excluded_and_refused_again() {
        let world = world();
        let device = Device::new(7);
        enrol(&world, ANN, &device, None);
        let options =
            block_on(registration_options(&world.deps(), &user(&world, ANN), 100)).unwrap();
        assert_eq!(
            options["excludeCredentials"][0]["id"],
            b64(&device.credential_id)
        );
        let refused = block_on(register(
            &world.deps(),
            &user(&world, ANN),
            None,
            &device.create(&options),
            101,
        ));
        assert_eq!(refused.unwrap_err(), ApiError::PasskeyTaken);
    }

    #[test]
    fn a_counter_that_goes_back_is_flagged_not_refused_and_never_stored_lower() {
        let world = world();
        let device = Device::new(7);
        enrol(&world, ANN, &device, None);
        device.counter.set(9);
        block_on(sign_in(
            &world.deps(),
            &device.get(&passwordless_options(&world)),
            201,
        ))
        .unwrap();
        device.counter.set(2);
        block_on(sign_in(
            &world.deps(),
            &device.get(&passwordless_options(&world)),
            202,
        ))
        .unwrap();
        assert_eq!(world.store.passkeys.borrow()[0].sign_count, 10);
        assert!(world
            .edge
            .event_names()
            .contains(&"passkey_counter_regressed".to_owned()));
        let counts = world.edge.counts.borrow().join(" ");
        assert!(counts.contains("sign_count"), "{counts}");
    }

    #[test]
    fn a_banned_account_is_refused_after_the_proof() {
        let world = world();
        let device = Device::new(7);
        enrol(&world, ANN, &device, None);
        world.store.users.borrow_mut()[0].banned_at = Some(150);
        let refused = block_on(sign_in(
            &world.deps(),
            &device.get(&passwordless_options(&world)),
            201,
        ));
        assert_eq!(refused.unwrap_err().status(), 403);
        assert!(world.store.sessions.borrow().is_empty());
    }

    #[test]
    fn an_unverified_address_is_refused_when_verification_is_required() {
        let mut world = world();
        let device = Device::new(7);
        enrol(&world, ANN, &device, None);
        world.config = crate::service::testing::config(&[
            ("REQUIRE_EMAIL_VERIFICATION", "true"),
            ("EMAIL_PROVIDER", "outbox"),
            ("ENVIRONMENT", "development"),
        ]);
        world.store.users.borrow_mut()[0].email_verified = false;
        let refused = block_on(sign_in(
            &world.deps(),
            &device.get(&passwordless_options(&world)),
            201,
        ));
        assert_eq!(refused.unwrap_err().status(), 403);
        assert!(world.store.sessions.borrow().is_empty());
        world.store.users.borrow_mut()[0].email_verified = true;
        block_on(sign_in(
            &world.deps(),
            &device.get(&passwordless_options(&world)),
            202,
        ))
        .unwrap();
    }

    #[test]
    fn the_last_way_to_sign_in_is_never_deleted() {
        let world = world();
        let (one, two) = (Device::new(7), Device::new(8));
        let first = enrol(&world, BOB, &one, None);
        let second = enrol(&world, BOB, &two, Some("Phone"));
        block_on(delete(&world.deps(), BOB, &first.id, 300)).unwrap();
        assert_eq!(
            block_on(delete(&world.deps(), BOB, &second.id, 301)).unwrap_err(),
            ApiError::LastSignInMethod
        );
        // Not Ann's to delete; not a passkey id at all.
        assert_eq!(
            block_on(delete(&world.deps(), ANN, &second.id, 302)).unwrap_err(),
            ApiError::NotFound
        );
        assert_eq!(
            block_on(delete(&world.deps(), BOB, "x", 302)).unwrap_err(),
            ApiError::NotFound
        );
        // Ann has a password: her only passkey goes.
        let hers = enrol(&world, ANN, &Device::new(9), None);
        block_on(delete(&world.deps(), ANN, &hers.id, 303)).unwrap();
        assert_eq!(
            actions(&world),
            [
                "passkey.registered",
                "passkey.registered",
                "passkey.deleted",
                "passkey.registered",
                "passkey.deleted"
            ]
        );
    }

    #[test]
    fn renaming_checks_the_name_and_the_owner() {
        let world = world();
        let passkey = enrol(&world, ANN, &Device::new(7), None);
        assert_eq!(passkey.name, "Passkey");
        let renamed = block_on(rename(&world.deps(), ANN, &passkey.id, " Work key ", 300)).unwrap();
        assert_eq!(renamed.name, "Work key");
        assert_eq!(
            block_on(rename(&world.deps(), ANN, &passkey.id, " ", 300))
                .unwrap_err()
                .status(),
            422
        );
        assert_eq!(
            block_on(rename(&world.deps(), BOB, &passkey.id, "Mine", 300)).unwrap_err(),
            ApiError::NotFound
        );
        assert_eq!(actions(&world), ["passkey.registered", "passkey.renamed"]);
    }

    #[test]
    fn passkeys_are_off_without_a_relying_party() {
        let world = World::new(&[("PUBLIC_BASE_URL", "")]);
        let refused = block_on(authentication_options(&world.deps(), None, 1));
        assert_eq!(refused.unwrap_err(), ApiError::NotFound);
        assert_eq!(
            block_on(list(&world.deps(), ANN)).unwrap_err(),
            ApiError::NotFound
        );
    }
}
