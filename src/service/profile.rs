//! The signed-in account's own profile: a new username applies at once; a new email
//! address (where password resets go) only with the current password and only once the new
//! address confirms; removing the address applies at once, unless accounts must have one.

use crate::domain::email::Purpose;
use crate::domain::user::User;
use crate::error::{ApiError, FieldError};
use crate::service::email::{self, PreparedToken};
use crate::service::passwords;
use crate::service::ports::{Deps, Edge};
use crate::store::traits::{OneTimeTokenStore, ProfileChange, UserStore};
use serde_json::json;

/// A profile change as the caller asked for it, canonical (the edge checked each field).
pub struct ProfileRequest {
    pub username: Option<String>,
    /// `Some(None)`: remove the address.
    pub email: Option<Option<String>>,
    pub current_password: Option<String>,
}

/// The account after a change, and the address waiting for its confirmation, if any.
#[derive(Debug)]
pub struct ProfileUpdated {
    pub user: User,
    pub pending_email: Option<String>,
}

/// Field errors a profile change has whatever the store holds: a new address needs the
/// current password, and an address cannot be removed where accounts must verify one.
pub fn rule_errors(
    user: &User,
    request: &ProfileRequest,
    require_verification: bool,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let email_changes = email_changes(user, request);
    if email_changes && request.current_password.is_none() {
        errors.push(FieldError::new(
            "current_password",
            "is required to change the email address",
        ));
    }
    if email_changes && request.email == Some(None) && require_verification {
        errors.push(FieldError::new(
            "email",
            "cannot be removed: accounts must have a verified email address",
        ));
    }
    errors
}

fn email_changes(user: &User, request: &ProfileRequest) -> bool {
    request
        .email
        .as_ref()
        .is_some_and(|email| email.as_deref() != user.email.as_deref())
}

/// Apply a profile change of the caller `user`. A `current_password` that is sent is always
/// checked, so a wrong one never passes silently.
pub async fn update<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    request: ProfileRequest,
    now: i64,
) -> Result<ProfileUpdated, ApiError>
where
    S: UserStore + OneTimeTokenStore,
{
    let errors = rule_errors(user, &request, deps.config.email.require_verification);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let email_changes = email_changes(user, &request);
    if email_changes {
        crate::service::mfa_gate::require_step_up(deps, user, now)?;
    }
    if let Some(password) = request.current_password.as_deref() {
        passwords::confirm(deps, user, "current_password", password).await?;
    }
    // A new address is only proposed here; removing the address applies at once.
    let pending_email = match (&request.email, email_changes) {
        (Some(Some(new_email)), true) => Some(new_email.clone()),
        _ => None,
    };
    let change = ProfileChange {
        username: request.username.as_deref(),
        email: match (&request.email, email_changes) {
            (Some(None), true) => Some(None),
            _ => None,
        },
        email_verified: None,
    };
    // Nothing to write (only an email proposal, or an empty change): the record stays
    // untouched, `updated_at` included.
    let updated = if change.username.is_none() && change.email.is_none() {
        user.clone()
    } else {
        deps.store
            .update_profile(&user.id, &change, now, None)
            .await?
            .ok_or(ApiError::NotFound)?
    };
    if let Some(new_email) = &pending_email {
        propose_email_change(deps, &updated, new_email, now).await?;
    }
    Ok(ProfileUpdated {
        user: updated,
        pending_email,
    })
}

/// Send the confirmation of a new address (and a notice to the old one). An address that
/// belongs to another account gets nothing, and the answer is the same, so this cannot be
/// used to find out which addresses have accounts; confirming it would fail with a 409.
async fn propose_email_change<S, E: Edge>(
    deps: &Deps<'_, S, E>,
    user: &User,
    new_email: &str,
    now: i64,
) -> Result<(), ApiError>
where
    S: UserStore + OneTimeTokenStore,
{
    let taken = deps
        .store
        .find_by_email(new_email)
        .await?
        .is_some_and(|other| other.id != user.id);
    if taken {
        deps.edge.security_event(
            "email_change_to_taken_address",
            json!({ "user_id": user.id }),
        );
        return Ok(());
    }
    let prepared =
        PreparedToken::draw(deps.config, Purpose::ChangeEmail, &user.id, new_email, now)?;
    email::issue_and_send(deps, &prepared).await?;
    if let Some(old_email) = &user.email {
        email::send_notice(deps, Purpose::EmailChangeNotice, old_email, Some(new_email)).await?;
    }
    deps.edge
        .security_event("email_change_requested", json!({ "user_id": user.id }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::auth::{signup, SignupInput};
    use crate::service::block_on;
    use crate::service::email::{confirm_email_change, Proof};
    use crate::service::testing::{RecordingEdge, World};
    use crate::store::memory::MemoryStore;

    const PASSWORD: &str = "a long passphrase for tests";

    fn account(deps: &Deps<'_, MemoryStore, RecordingEdge>, name: &str) -> User {
        let input = SignupInput {
            username: name.into(),
            email: Some(format!("{name}@example.com")),
            password: PASSWORD.into(),
        };
        block_on(signup(deps, input, 1_000)).unwrap();
        deps.store.users.borrow().last().unwrap().clone()
    }

    fn request(email: Option<Option<&str>>, password: Option<&str>) -> ProfileRequest {
        ProfileRequest {
            username: None,
            email: email.map(|email| email.map(str::to_owned)),
            current_password: password.map(str::to_owned),
        }
    }

    #[test]
    fn a_new_address_waits_for_its_confirmation_and_the_old_one_is_told() {
        let world = World::new(&[]);
        let deps = world.deps();
        let ada = account(&deps, "ada");
        let change = request(Some(Some("new@example.com")), Some(PASSWORD));
        let updated = block_on(update(&deps, &ada, change, 1_010)).unwrap();
        assert_eq!(updated.pending_email.as_deref(), Some("new@example.com"));
        assert_eq!(updated.user.email.as_deref(), Some("ada@example.com"));
        let mail = world.edge.mail.borrow();
        let to: Vec<_> = mail
            .iter()
            .skip(1)
            .map(|mail| mail.message.to.as_str())
            .collect();
        assert_eq!(to, ["new@example.com", "ada@example.com"]);
        let token = mail[1].token.clone().unwrap();
        drop(mail);
        let user = block_on(confirm_email_change(&deps, &Proof::Token(token), 1_020)).unwrap();
        assert_eq!(user.email.as_deref(), Some("new@example.com"));
    }

    #[test]
    fn an_address_of_another_account_gets_nothing_and_the_answer_is_the_same() {
        let world = World::new(&[]);
        let deps = world.deps();
        let ada = account(&deps, "ada");
        account(&deps, "bob");
        let sent = world.edge.mail.borrow().len();
        let change = request(Some(Some("bob@example.com")), Some(PASSWORD));
        let updated = block_on(update(&deps, &ada, change, 1_010)).unwrap();
        assert_eq!(updated.pending_email.as_deref(), Some("bob@example.com"));
        assert_eq!(world.edge.mail.borrow().len(), sent);
    }

    #[test]
    fn a_new_address_needs_the_right_current_password() {
        let world = World::new(&[]);
        let deps = world.deps();
        let ada = account(&deps, "ada");
        let missing = block_on(update(
            &deps,
            &ada,
            request(Some(Some("n@example.com")), None),
            1_010,
        ));
        assert_eq!(
            missing.unwrap_err(),
            ApiError::Validation(vec![FieldError::new(
                "current_password",
                "is required to change the email address"
            )])
        );
        let wrong = request(Some(Some("n@example.com")), Some("not it"));
        let wrong = block_on(update(&deps, &ada, wrong, 1_011)).unwrap_err();
        assert_eq!(wrong, ApiError::invalid("current_password", "is incorrect"));
    }

    #[test]
    fn removing_the_address_applies_at_once_unless_accounts_must_have_one() {
        let world = World::new(&[]);
        let deps = world.deps();
        let ada = account(&deps, "ada");
        let errors = rule_errors(&ada, &request(Some(None), Some(PASSWORD)), true);
        assert_eq!(errors.len(), 1);
        let updated = block_on(update(
            &deps,
            &ada,
            request(Some(None), Some(PASSWORD)),
            1_010,
        ))
        .unwrap();
        assert_eq!(updated.user.email, None);
        assert_eq!(updated.pending_email, None);
    }
}
