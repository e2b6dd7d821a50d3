//! Roles and permissions: who may use which administrative route.
//!
//! Permissions belong to roles (`role_permissions` in D1); accounts hold roles. A route
//! names the permission it needs, and the caller has it when a role granting it appears in
//! **both** the access token's `roles` claim and the account's roles as D1 holds them now.
//! The token alone is not enough (a demoted admin's token keeps its claim until it expires),
//! and D1 alone is not either (a role granted a minute ago reaches a session at its next
//! refresh, when the token is reissued).

/// The role every account receives at signup.
pub const ROLE_USER: &str = "user";
/// The administrators' role; granted from the command line (`npm run admin -- grant`).
pub const ROLE_ADMIN: &str = "admin";

/// The permissions the migrations seed; routes name them through these constants.
pub mod permission {
    pub const USERS_READ: &str = "users:read";
    pub const USERS_WRITE: &str = "users:write";
    pub const USERS_BAN: &str = "users:ban";
    pub const USERS_DELETE: &str = "users:delete";
    pub const ROLES_ASSIGN: &str = "roles:assign";
    pub const SESSIONS_READ: &str = "sessions:read";
    pub const SESSIONS_REVOKE: &str = "sessions:revoke";
    pub const AUDIT_READ: &str = "audit:read";
}

/// Why a caller was refused; logged, never shown beyond "not allowed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The token's roles do not grant it (never did, or the role came after the token).
    Token,
    /// The token's roles do, but the account no longer holds such a role.
    Account,
}

impl Denial {
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Token => "token_lacks_right",
            Denial::Account => "account_lacks_right",
        }
    }
}

fn holds_any(held: &[String], wanted: &[String]) -> bool {
    held.iter().any(|role| wanted.contains(role))
}

/// Decide whether a caller may act, given the roles that grant the needed permission (from
/// `role_permissions`), the roles in the caller's token and the roles the account holds now.
pub fn authorize(
    granting_roles: &[String],
    token_roles: &[String],
    account_roles: &[String],
) -> Result<(), Denial> {
    if !holds_any(token_roles, granting_roles) {
        return Err(Denial::Token);
    }
    if !holds_any(account_roles, granting_roles) {
        return Err(Denial::Account);
    }
    Ok(())
}

/// Decide whether a caller holds a role, by the same two sources.
pub fn has_role(
    role: &str,
    token_roles: &[String],
    account_roles: &[String],
) -> Result<(), Denial> {
    authorize(&[role.to_owned()], token_roles, account_roles)
}

/// A role with its description and the permissions it grants (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_permission_needs_a_granting_role_in_token_and_account() {
        let granting = roles(&["admin", "support"]);
        assert_eq!(
            authorize(
                &granting,
                &roles(&["user", "admin"]),
                &roles(&["admin", "user"])
            ),
            Ok(())
        );
        assert_eq!(
            authorize(&granting, &roles(&["support"]), &roles(&["support"])),
            Ok(())
        );
    }

    #[test]
    fn a_demoted_account_is_refused_whatever_its_token_says() {
        assert_eq!(
            authorize(&roles(&["admin"]), &roles(&["admin"]), &roles(&["user"])),
            Err(Denial::Account)
        );
    }

    #[test]
    fn a_role_granted_after_the_token_counts_from_the_next_token() {
        assert_eq!(
            authorize(&roles(&["admin"]), &roles(&["user"]), &roles(&["admin"])),
            Err(Denial::Token)
        );
    }

    #[test]
    fn a_permission_no_role_grants_is_refused_to_everyone() {
        assert_eq!(
            authorize(&[], &roles(&["admin"]), &roles(&["admin"])),
            Err(Denial::Token)
        );
    }

    #[test]
    fn roles_are_checked_by_exact_name() {
        assert_eq!(
            has_role("admin", &roles(&["Admin", "admins"]), &roles(&["admin"])),
            Err(Denial::Token)
        );
        assert_eq!(
            has_role("admin", &roles(&["admin"]), &roles(&["admin"])),
            Ok(())
        );
    }
}
