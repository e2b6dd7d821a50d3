//! The ways into an account that can be removed one by one, a linked identity or a passkey,
//! and the rule both backends hold when one goes: never the last way in. An account keeps
//! a password, another identity or a passkey, whichever kind is being removed.

/// A removable way to sign in, by the table that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Identity,
    Passkey,
}

impl SignInMethod {
    /// The table that holds this kind (a constant, never input).
    pub fn table(self) -> &'static str {
        match self {
            SignInMethod::Identity => "identities",
            SignInMethod::Passkey => "passkeys",
        }
    }

    /// The condition that leaves out the row being removed, for `table`'s own query of
    /// other ways in: `id <> {id}` on its own kind, nothing on the other.
    pub fn other_than(self, table: &str, id: &str) -> String {
        if table == self.table() {
            format!(" AND id <> {id}")
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kind_being_removed_leaves_its_row_out() {
        let identity = SignInMethod::Identity;
        assert_eq!(identity.other_than("identities", "?1"), " AND id <> ?1");
        assert_eq!(identity.other_than("passkeys", "?1"), "");
        let passkey = SignInMethod::Passkey;
        assert_eq!(
            passkey.other_than("passkeys", "$1::uuid"),
            " AND id <> $1::uuid"
        );
        assert_eq!(passkey.other_than("identities", "$1::uuid"), "");
    }
}
