//! The storage traits of the tables on PostgreSQL (through Hyperdrive); what lives in KV and
//! Durable Objects is `store::bindings`, whichever database holds the tables.
//!
//! Ids are `uuid` columns. An id that is not a canonical UUID names no record, so it is
//! answered here without a query (as D1 compares text), and never reaches a cast that would
//! fail. Each write of several statements is one transaction; the checks a D1 batch writes
//! as `WHERE EXISTS` conditions are plain reads inside it.

use super::{Connection, Param, Transaction};
use crate::domain::access::Role;
use crate::domain::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::domain::email::{Message, Purpose};
use crate::domain::identity::{GrantKind, Identity, Unlink};
use crate::domain::mfa::{Factor, SessionLevel};
use crate::domain::one_time::IssuedToken;
use crate::domain::passkey::{split_transports, ChallengePurpose, Passkey, SpentChallenge};
use crate::domain::password::NO_PASSWORD;
use crate::domain::query::{Page, PrefixRange};
use crate::domain::session::{is_uuid, Session};
use crate::domain::user::{looks_like_email, normalize_email, normalize_username, User};
use crate::store::error::StoreError;
use crate::store::sign_in_method::SignInMethod;
use crate::store::traits::{
    AuditStore, Ban, Confirmation, FactorStore, HealthStore, IdentityStore, MaintenanceStore,
    NewFactor, NewIdentity, NewPasskey, NewSession, NewToken, NewUser, OAuthGrantStore,
    OneTimeTokenStore, OutboxStore, PasskeyStore, PasskeyUse, ProfileChange, Pruned,
    RefreshTokenStore, RoleStore, RotatedSession, Rotation, SessionStore, StoredMessage,
    TokenEffect, UserStore,
};
use serde_json::Value;
use tokio_postgres::types::Type;
use tokio_postgres::Row;
use worker::Env;

/// The columns of an account, with its role names in order, for a `users` table aliased `u`.
macro_rules! user_columns {
    () => {
        "u.id::text AS id, u.username, u.email, u.password_hash, \
       u.email_verified, u.created_at, u.updated_at, u.banned_at, u.banned_until, \
       u.ban_reason, \
       ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role) AS roles"
    };
}

/// An account, with its role names in order.
const USER_SELECT: &str = concat!("SELECT ", user_columns!(), " FROM users u");

/// A rotation's step once the presented token is consumed, as one statement (one round
/// trip, not three): slide session `$2`'s idle expiry from `$1` by `$3` seconds (never past
/// its absolute expiry), insert successor `$4` expiring with it, and read back the account
/// with the level the session reached (the columns `user_from` reads into
/// `session_level`). The insert and the read take the slid row from `RETURNING`, since the
/// statements of one `WITH` all see the snapshot from before it.
const ROTATION_STEP: &str = concat!(
    "WITH slid AS (UPDATE sessions SET last_used_at = $1, \
       idle_expires_at = LEAST($1 + $3, absolute_expires_at) \
     WHERE id = $2::uuid RETURNING id, user_id, idle_expires_at, aal, amr, aal2_at), \
     successor AS (INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
       SELECT $4, id, $1, idle_expires_at FROM slid RETURNING session_id) \
     SELECT ",
    user_columns!(),
    ", s.aal AS session_aal, s.amr AS session_amr, s.aal2_at AS session_aal2_at \
     FROM slid s JOIN successor n ON n.session_id = s.id JOIN users u ON u.id = s.user_id"
);

/// SQL: account `u` is not banned at the time in parameter `now` (the rule of `BanState`).
fn not_banned(now: &str) -> String {
    format!("(u.banned_at IS NULL OR (u.banned_until IS NOT NULL AND u.banned_until <= {now}))")
}

fn read_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::unavailable("Database", error)
}

fn user_from(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id").map_err(read_error)?,
        username: row.try_get("username").map_err(read_error)?,
        email: row.try_get("email").map_err(read_error)?,
        email_verified: row.try_get("email_verified").map_err(read_error)?,
        roles: row.try_get("roles").map_err(read_error)?,
        created_at: row.try_get("created_at").map_err(read_error)?,
        updated_at: row.try_get("updated_at").map_err(read_error)?,
        banned_at: row.try_get("banned_at").map_err(read_error)?,
        banned_until: row.try_get("banned_until").map_err(read_error)?,
        ban_reason: row.try_get("ban_reason").map_err(read_error)?,
        password_hash: row.try_get("password_hash").map_err(read_error)?,
        session_signed_in_at: row
            .try_get::<_, Option<i64>>("session_signed_in_at")
            .ok()
            .flatten(),
        // Only a lookup by live session reads these columns.
        session_level: row
            .try_get::<_, Option<String>>("session_aal")
            .ok()
            .flatten()
            .map(|aal| {
                crate::domain::mfa::SessionLevel::from_stored(
                    &aal,
                    row.try_get::<_, Option<String>>("session_amr")
                        .ok()
                        .flatten()
                        .as_deref(),
                    row.try_get::<_, Option<i64>>("session_aal2_at")
                        .ok()
                        .flatten(),
                )
            }),
        mfa_enabled: row
            .try_get::<_, Option<bool>>("mfa_enabled")
            .ok()
            .flatten()
            .unwrap_or(false),
    })
}

fn first_user(rows: &[Row]) -> Result<Option<User>, StoreError> {
    rows.first().map(user_from).transpose()
}

fn count_of(rows: &[Row]) -> Result<u64, StoreError> {
    match rows.first() {
        Some(row) => Ok(u64::try_from(row.try_get::<_, i64>(0).map_err(read_error)?).unwrap_or(0)),
        None => Ok(0),
    }
}

fn changed(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// The tables of one request, on its PostgreSQL connection (opened on first use).
pub struct PgBackend<'a> {
    db: Connection<'a>,
}

impl<'a> PgBackend<'a> {
    pub fn new(env: &'a Env) -> Self {
        Self {
            db: Connection::new(env),
        }
    }

    /// One page of a listing and how many rows match in all: `SELECT COUNT(*) {from}` and
    /// `{rows}` (ordered, without its limit), both with `filters` as `$1`...
    async fn page_of(
        &self,
        from: &str,
        rows: &str,
        filters: &[Param<'_>],
        page: Page,
    ) -> Result<(Vec<Row>, u64), StoreError> {
        let total = count_of(
            &self
                .db
                .read(&format!("SELECT COUNT(*) {from}"), filters)
                .await?,
        )?;
        let limit = i64::from(page.per_page);
        let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
        let mut params = filters.to_vec();
        params.push((&limit, Type::INT8));
        params.push((&offset, Type::INT8));
        let sql = format!(
            "{rows} LIMIT ${} OFFSET ${}",
            filters.len() + 1,
            filters.len() + 2
        );
        Ok((self.db.read(&sql, &params).await?, total))
    }

    /// The newest live one-time token of `purpose` whose `condition` on `$1` holds.
    async fn live_token(
        &self,
        condition: &str,
        value: &str,
        purpose: Purpose,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        let purpose = purpose.as_str();
        let rows = self
            .db
            .read(
                &format!(
                    "{TOKEN_SELECT} WHERE {condition} AND purpose = $2 AND used_at IS NULL \
                       AND expires_at > $3 ORDER BY created_at DESC LIMIT 1"
                ),
                &[
                    (&value, Type::TEXT),
                    (&purpose, Type::TEXT),
                    (&now, Type::INT8),
                ],
            )
            .await?;
        rows.first().map(token_from).transpose()
    }

    async fn user_by(&self, condition: &str, value: &str) -> Result<Option<User>, StoreError> {
        let rows = self
            .db
            .read(
                &format!("{USER_SELECT} WHERE {condition}"),
                &[(&value, Type::TEXT)],
            )
            .await?;
        first_user(&rows)
    }
}

/// An account read inside a transaction.
async fn user_in(tx: &Transaction, user_id: &str) -> Result<Option<User>, StoreError> {
    let rows = tx
        .query(
            &format!("{USER_SELECT} WHERE u.id = $1::uuid"),
            &[(&user_id, Type::TEXT)],
        )
        .await?;
    first_user(&rows)
}

/// Insert an account with the default role inside a transaction. A taken username is
/// reported whatever the email, so the answer never depends on whether an address has an
/// account (see the D1 backend).
async fn insert_user(tx: &Transaction, user: &NewUser<'_>) -> Result<(), StoreError> {
    let taken = tx
        .query(
            "SELECT 1 FROM users WHERE username = $1",
            &[(&user.username, Type::TEXT)],
        )
        .await?;
    if !taken.is_empty() {
        return Err(StoreError::Taken(crate::store::error::Unique::Username));
    }
    tx.execute(
        "INSERT INTO users (id, username, email, password_hash, email_verified, \
           created_at, updated_at) VALUES ($1::uuid, $2, $3, $4, $6, $5, $5)",
        &[
            (&user.id, Type::TEXT),
            (&user.username, Type::TEXT),
            (&user.email, Type::TEXT),
            (&user.password_hash, Type::TEXT),
            (&user.now, Type::INT8),
            (&user.email_verified, Type::BOOL),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO user_roles (user_id, role, granted_at) VALUES ($1::uuid, 'user', $2)",
        &[(&user.id, Type::TEXT), (&user.now, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Insert an identity inside a transaction.
async fn insert_identity(tx: &Transaction, identity: &NewIdentity<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO identities (id, user_id, provider, subject, email, created_at, \
           last_used_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $6)",
        &[
            (&identity.id, Type::TEXT),
            (&identity.user_id, Type::TEXT),
            (&identity.provider, Type::TEXT),
            (&identity.subject, Type::TEXT),
            (&identity.email, Type::TEXT),
            (&identity.now, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

/// Insert an audit entry inside a transaction.
async fn insert_audit(tx: &Transaction, entry: &AuditEntry) -> Result<(), StoreError> {
    let details = entry.details.to_string();
    let action = entry.action.as_str();
    tx.execute(
        "INSERT INTO audit_log (occurred_at, action, actor_id, target_id, request_id, ip, \
           colo, details) VALUES ($1, $2, $3::uuid, $4::uuid, $5, $6, $7, $8)",
        &[
            (&entry.occurred_at, Type::INT8),
            (&action, Type::TEXT),
            (&entry.actor_id, Type::TEXT),
            (&entry.target_id, Type::TEXT),
            (&entry.origin.request_id, Type::TEXT),
            (&entry.origin.ip, Type::TEXT),
            (&entry.origin.colo, Type::TEXT),
            (&details, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}

/// Insert a session with its first refresh token inside a transaction.
async fn insert_session(tx: &Transaction, session: &NewSession<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, \
           absolute_expires_at, user_agent, colo, country, aal, amr, aal2_at) \
         VALUES ($1::uuid, $2::uuid, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            (&session.id, Type::TEXT),
            (&session.user_id, Type::TEXT),
            (&session.now, Type::INT8),
            (&session.expiry.idle_expires_at, Type::INT8),
            (&session.expiry.absolute_expires_at, Type::INT8),
            (&session.user_agent, Type::TEXT),
            (&session.colo, Type::TEXT),
            (&session.country, Type::TEXT),
            (&session.level.aal.as_str(), Type::TEXT),
            (&session.level.amr_json(), Type::TEXT),
            (&session.level.aal2_at, Type::INT8),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
         VALUES ($1, $2::uuid, $3, $4)",
        &[
            (&session.refresh_token_hash, Type::TEXT),
            (&session.id, Type::TEXT),
            (&session.now, Type::INT8),
            (&session.expiry.idle_expires_at, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

/// Issue a one-time token inside a transaction: the account's older live tokens of the
/// purpose are spent first, so only the newest message works.
async fn insert_token(tx: &Transaction, token: &NewToken<'_>) -> Result<(), StoreError> {
    let purpose = token.purpose.as_str();
    tx.execute(
        "UPDATE one_time_tokens SET used_at = $3, used_by = 'superseded' \
         WHERE user_id = $1::uuid AND purpose = $2 AND used_at IS NULL",
        &[
            (&token.user_id, Type::TEXT),
            (&purpose, Type::TEXT),
            (&token.now, Type::INT8),
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO one_time_tokens (id, user_id, purpose, token_hash, code_hash, email, \
           created_at, expires_at) VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8)",
        &[
            (&token.id, Type::TEXT),
            (&token.user_id, Type::TEXT),
            (&purpose, Type::TEXT),
            (&token.token_hash, Type::TEXT),
            (&token.code_hash, Type::TEXT),
            (&token.email, Type::TEXT),
            (&token.now, Type::INT8),
            (&token.expires_at, Type::INT8),
        ],
    )
    .await?;
    Ok(())
}

impl PgBackend<'_> {
    /// Remove row `id` of `method`'s table from account `user_id`, with `entry`, unless it
    /// is the account's last way to sign in (`store::sign_in_method`). The account's row
    /// lock serialises its removals, identities and passkeys alike: under READ COMMITTED two
    /// concurrent ones could each see the other way in and both delete, leaving the account
    /// no way to sign in. The second waits, then reads the first's result.
    async fn remove_sign_in_method(
        &self,
        method: SignInMethod,
        user_id: &str,
        id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        if !is_uuid(user_id) || !is_uuid(id) {
            return Ok(Unlink::NotFound);
        }
        let table = method.table();
        let owned = format!("SELECT 1 FROM {table} WHERE id = $1::uuid AND user_id = $2::uuid");
        let other_way = format!(
            "SELECT 1 FROM users WHERE id = $2::uuid AND password_hash <> $3 \
             UNION ALL SELECT 1 FROM identities WHERE user_id = $2::uuid{} \
             UNION ALL SELECT 1 FROM passkeys WHERE user_id = $2::uuid{}",
            method.other_than("identities", "$1::uuid"),
            method.other_than("passkeys", "$1::uuid"),
        );
        let delete = format!("DELETE FROM {table} WHERE id = $1::uuid AND user_id = $2::uuid");
        self.db
            .transaction(async |tx| {
                if !user_exists(tx, user_id).await? {
                    return Ok(Unlink::NotFound);
                }
                let row: [Param<'_>; 2] = [(&id, Type::TEXT), (&user_id, Type::TEXT)];
                if tx.query(&owned, &row).await?.is_empty() {
                    return Ok(Unlink::NotFound);
                }
                let with_marker: [Param<'_>; 3] = [
                    (&id, Type::TEXT),
                    (&user_id, Type::TEXT),
                    (&NO_PASSWORD, Type::TEXT),
                ];
                if tx.query(&other_way, &with_marker).await?.is_empty() {
                    return Ok(Unlink::LastSignInMethod);
                }
                tx.execute(&delete, &row).await?;
                insert_audit(tx, entry).await?;
                Ok(Unlink::Unlinked)
            })
            .await
    }
}

/// Whether the account exists, read inside a transaction (and locked against a concurrent
/// delete until it ends).
async fn user_exists(tx: &Transaction, user_id: &str) -> Result<bool, StoreError> {
    Ok(!tx
        .query(
            "SELECT 1 FROM users WHERE id = $1::uuid FOR UPDATE",
            &[(&user_id, Type::TEXT)],
        )
        .await?
        .is_empty())
}

impl UserStore for PgBackend<'_> {
    async fn find_user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(None);
        }
        self.user_by("u.id = $1::uuid", user_id).await
    }

    async fn find_by_live_session(
        &self,
        user_id: &str,
        session_id: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        if !is_uuid(user_id) || !is_uuid(session_id) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT u.id::text AS id, u.username, u.email, u.password_hash, u.email_verified, \
               u.created_at, u.updated_at, u.banned_at, u.banned_until, u.ban_reason, \
               ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role) \
                 AS roles, \
               s.created_at AS session_signed_in_at, s.aal AS session_aal, \
               s.amr AS session_amr, s.aal2_at AS session_aal2_at, \
               (EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = u.id \
                 AND f.confirmed_at IS NOT NULL) \
                OR EXISTS (SELECT 1 FROM passkeys p WHERE p.user_id = u.id)) AS mfa_enabled \
             FROM users u JOIN sessions s ON s.user_id = u.id \
             WHERE u.id = $1::uuid AND s.id = $2::uuid AND s.revoked_at IS NULL \
               AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3 \
               AND u.tokens_valid_after <= $4 AND {}",
            not_banned("$3")
        );
        let rows = self
            .db
            .read(
                &sql,
                &[
                    (&user_id, Type::TEXT),
                    (&session_id, Type::TEXT),
                    (&now, Type::INT8),
                    (&issued_at, Type::INT8),
                ],
            )
            .await?;
        first_user(&rows)
    }

    async fn find_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.user_by("u.email = $1", email).await
    }

    async fn find_by_identifier(&self, identifier: &str) -> Result<Option<User>, StoreError> {
        let identifier = identifier.trim();
        if looks_like_email(identifier) {
            match normalize_email(identifier) {
                Ok(email) => self.find_by_email(&email).await,
                Err(_) => Ok(None),
            }
        } else {
            match normalize_username(identifier) {
                Ok(username) => self.user_by("u.username = $1", &username).await,
                Err(_) => Ok(None),
            }
        }
    }

    async fn create_user(
        &self,
        user: &NewUser<'_>,
        session: Option<&NewSession<'_>>,
        entry: &AuditEntry,
        verification: Option<&NewToken<'_>>,
    ) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| {
                insert_user(tx, user).await?;
                if let Some(session) = session {
                    insert_session(tx, session).await?;
                }
                insert_audit(tx, entry).await?;
                if let Some(token) = verification {
                    insert_token(tx, token).await?;
                }
                Ok(())
            })
            .await
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        if !is_uuid(user_id) {
            return Ok(0);
        }
        self.db
            .transaction(async |tx| {
                let updated = tx
                    .execute(
                        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1::uuid",
                        &[
                            (&user_id, Type::TEXT),
                            (&password_hash, Type::TEXT),
                            (&now, Type::INT8),
                        ],
                    )
                    .await?;
                if updated == 0 {
                    return Ok(0);
                }
                insert_audit(tx, entry).await?;
                let Some(keep) = keep_session.filter(|keep| is_uuid(keep)) else {
                    return Ok(0);
                };
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $3, revoked_reason = 'password_change' \
                         WHERE user_id = $1::uuid AND id <> $2::uuid AND revoked_at IS NULL",
                        &[
                            (&user_id, Type::TEXT),
                            (&keep, Type::TEXT),
                            (&now, Type::INT8),
                        ],
                    )
                    .await?;
                Ok(changed(revoked))
            })
            .await
    }

    async fn list_users(
        &self,
        search: Option<&PrefixRange>,
        page: Page,
    ) -> Result<(Vec<User>, u64), StoreError> {
        // Byte order (`COLLATE "C"`), as the prefix range is computed; D1 compares so too.
        let (condition, lower, upper) = match search {
            Some(range) => (
                "((u.username COLLATE \"C\" >= $1 AND u.username COLLATE \"C\" < $2) \
                  OR (u.email COLLATE \"C\" >= $1 AND u.email COLLATE \"C\" < $2))",
                range.lower.as_str(),
                range.upper.as_str(),
            ),
            None => ("($1::text IS NULL AND $2::text IS NULL)", "", ""),
        };
        let (lower, upper): (Option<&str>, Option<&str>) = match search {
            Some(_) => (Some(lower), Some(upper)),
            None => (None, None),
        };
        let bounds: [Param<'_>; 2] = [(&lower, Type::TEXT), (&upper, Type::TEXT)];
        let (rows, total) = self
            .page_of(
                &format!("FROM users u WHERE {condition}"),
                &format!("{USER_SELECT} WHERE {condition} ORDER BY u.created_at DESC, u.id ASC"),
                &bounds,
                page,
            )
            .await?;
        let users = rows.iter().map(user_from).collect::<Result<_, _>>()?;
        Ok((users, total))
    }

    async fn update_profile(
        &self,
        user_id: &str,
        change: &ProfileChange<'_>,
        now: i64,
        entry: Option<&AuditEntry>,
    ) -> Result<Option<User>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(None);
        }
        self.db
            .transaction(async |tx| {
                let rows = tx
                    .query(
                        &format!("{USER_SELECT} WHERE u.id = $1::uuid FOR UPDATE OF u"),
                        &[(&user_id, Type::TEXT)],
                    )
                    .await?;
                let Some(before) = first_user(&rows)? else {
                    return Ok(None);
                };
                let username = change.username.unwrap_or(&before.username).to_owned();
                let email = match change.email {
                    Some(email) => email.map(str::to_owned),
                    None => before.email.clone(),
                };
                let email_verified = match change.email_verified {
                    Some(verified) => verified,
                    None if email != before.email => false,
                    None => before.email_verified,
                };
                let differs = username != before.username
                    || email != before.email
                    || email_verified != before.email_verified;
                if differs {
                    tx.execute(
                        "UPDATE users SET username = $2, email = $3, email_verified = $4, \
                           updated_at = $5 WHERE id = $1::uuid",
                        &[
                            (&user_id, Type::TEXT),
                            (&username, Type::TEXT),
                            (&email, Type::TEXT),
                            (&email_verified, Type::BOOL),
                            (&now, Type::INT8),
                        ],
                    )
                    .await?;
                }
                if let Some(entry) = entry {
                    insert_audit(tx, entry).await?;
                }
                user_in(tx, user_id).await
            })
            .await
    }

    async fn delete_user(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        if !is_uuid(user_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                if !user_exists(tx, user_id).await? {
                    return Ok(false);
                }
                insert_audit(tx, entry).await?;
                for sql in [
                    "DELETE FROM refresh_tokens WHERE session_id IN \
                       (SELECT id FROM sessions WHERE user_id = $1::uuid)",
                    "DELETE FROM sessions WHERE user_id = $1::uuid",
                    "DELETE FROM one_time_tokens WHERE user_id = $1::uuid",
                    "DELETE FROM user_roles WHERE user_id = $1::uuid",
                    "DELETE FROM users WHERE id = $1::uuid",
                ] {
                    tx.execute(sql, &[(&user_id, Type::TEXT)]).await?;
                }
                Ok(true)
            })
            .await
    }

    async fn ban_user(
        &self,
        user_id: &str,
        ban: &Ban<'_>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(Option<User>, usize), StoreError> {
        if !is_uuid(user_id) {
            return Ok((None, 0));
        }
        self.db
            .transaction(async |tx| {
                if !user_exists(tx, user_id).await? {
                    return Ok((None, 0));
                }
                tx.execute(
                    "UPDATE users SET banned_at = $2, banned_until = $3, ban_reason = $4, \
                       tokens_valid_after = $2, updated_at = $2 WHERE id = $1::uuid",
                    &[
                        (&user_id, Type::TEXT),
                        (&now, Type::INT8),
                        (&ban.until, Type::INT8),
                        (&ban.reason, Type::TEXT),
                    ],
                )
                .await?;
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $2, revoked_reason = 'banned' \
                         WHERE user_id = $1::uuid AND revoked_at IS NULL",
                        &[(&user_id, Type::TEXT), (&now, Type::INT8)],
                    )
                    .await?;
                insert_audit(tx, entry).await?;
                Ok((user_in(tx, user_id).await?, changed(revoked)))
            })
            .await
    }

    async fn unban_user(
        &self,
        user_id: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<Option<User>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(None);
        }
        self.db
            .transaction(async |tx| {
                let lifted = tx
                    .execute(
                        "UPDATE users SET banned_at = NULL, banned_until = NULL, \
                           ban_reason = NULL, updated_at = $2 \
                         WHERE id = $1::uuid AND banned_at IS NOT NULL",
                        &[(&user_id, Type::TEXT), (&now, Type::INT8)],
                    )
                    .await?;
                if lifted > 0 {
                    insert_audit(tx, entry).await?;
                }
                user_in(tx, user_id).await
            })
            .await
    }
}

impl RoleStore for PgBackend<'_> {
    async fn list_roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = self
            .db
            .read(
                "SELECT r.name, r.description, \
                   ARRAY(SELECT p.permission FROM role_permissions p WHERE p.role = r.name \
                         ORDER BY p.permission) AS permissions \
                 FROM roles r ORDER BY r.name",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Role {
                    name: row.try_get("name").map_err(read_error)?,
                    description: row.try_get("description").map_err(read_error)?,
                    permissions: row.try_get("permissions").map_err(read_error)?,
                })
            })
            .collect()
    }

    async fn roles_granting(&self, permission: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .read(
                "SELECT role FROM role_permissions WHERE permission = $1",
                &[(&permission, Type::TEXT)],
            )
            .await?;
        rows.iter()
            .map(|row| row.try_get("role").map_err(read_error))
            .collect()
    }

    async fn role_exists(&self, role: &str) -> Result<bool, StoreError> {
        let rows = self
            .db
            .read(
                "SELECT 1 FROM roles WHERE name = $1",
                &[(&role, Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn grant_role(
        &self,
        user_id: &str,
        role: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        if !is_uuid(user_id) {
            return Ok((false, None));
        }
        self.db
            .transaction(async |tx| {
                if !user_exists(tx, user_id).await? {
                    return Ok((false, None));
                }
                let granted = tx
                    .execute(
                        "INSERT INTO user_roles (user_id, role, granted_at) \
                         VALUES ($1::uuid, $2, $3) ON CONFLICT DO NOTHING",
                        &[
                            (&user_id, Type::TEXT),
                            (&role, Type::TEXT),
                            (&now, Type::INT8),
                        ],
                    )
                    .await?
                    > 0;
                if granted {
                    insert_audit(tx, entry).await?;
                }
                Ok((granted, user_in(tx, user_id).await?))
            })
            .await
    }

    async fn remove_role(
        &self,
        user_id: &str,
        role: &str,
        entry: &AuditEntry,
    ) -> Result<(bool, Option<User>), StoreError> {
        if !is_uuid(user_id) {
            return Ok((false, None));
        }
        self.db
            .transaction(async |tx| {
                let removed = tx
                    .execute(
                        "DELETE FROM user_roles WHERE user_id = $1::uuid AND role = $2",
                        &[(&user_id, Type::TEXT), (&role, Type::TEXT)],
                    )
                    .await?
                    > 0;
                if removed {
                    insert_audit(tx, entry).await?;
                }
                Ok((removed, user_in(tx, user_id).await?))
            })
            .await
    }
}

fn session_from(row: &Row) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.try_get("id").map_err(read_error)?,
        created_at: row.try_get("created_at").map_err(read_error)?,
        last_used_at: row.try_get("last_used_at").map_err(read_error)?,
        idle_expires_at: row.try_get("idle_expires_at").map_err(read_error)?,
        absolute_expires_at: row.try_get("absolute_expires_at").map_err(read_error)?,
        user_agent: row.try_get("user_agent").map_err(read_error)?,
        colo: row.try_get("colo").map_err(read_error)?,
        country: row.try_get("country").map_err(read_error)?,
    })
}

impl SessionStore for PgBackend<'_> {
    async fn create_session(
        &self,
        session: &NewSession<'_>,
        rehashed_password: Option<&str>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| {
                insert_session(tx, session).await?;
                if let Some(hash) = rehashed_password {
                    tx.execute(
                        "UPDATE users SET password_hash = $2 WHERE id = $1::uuid",
                        &[(&session.user_id, Type::TEXT), (&hash, Type::TEXT)],
                    )
                    .await?;
                }
                insert_audit(tx, entry).await
            })
            .await
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> Result<Vec<Session>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .read(
                "SELECT id::text AS id, created_at, last_used_at, idle_expires_at, \
                   absolute_expires_at, user_agent, colo, country \
                 FROM sessions WHERE user_id = $1::uuid AND revoked_at IS NULL \
                   AND idle_expires_at > $2 AND absolute_expires_at > $2 \
                 ORDER BY last_used_at DESC, created_at DESC LIMIT 100",
                &[(&user_id, Type::TEXT), (&now, Type::INT8)],
            )
            .await?;
        rows.iter().map(session_from).collect()
    }

    async fn revoke_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        if !is_uuid(session_id) || !is_uuid(user_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $3, revoked_reason = $4 \
                         WHERE id = $1::uuid AND user_id = $2::uuid AND revoked_at IS NULL",
                        &[
                            (&session_id, Type::TEXT),
                            (&user_id, Type::TEXT),
                            (&now, Type::INT8),
                            (&reason, Type::TEXT),
                        ],
                    )
                    .await?
                    > 0;
                if revoked {
                    insert_audit(tx, entry).await?;
                }
                Ok(revoked)
            })
            .await
    }

    async fn revoke_all_sessions(
        &self,
        user_id: &str,
        reason: &str,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<usize, StoreError> {
        if !is_uuid(user_id) {
            return Ok(0);
        }
        self.db
            .transaction(async |tx| {
                if !user_exists(tx, user_id).await? {
                    return Ok(0);
                }
                insert_audit(tx, entry).await?;
                let revoked = tx
                    .execute(
                        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
                         WHERE user_id = $1::uuid AND revoked_at IS NULL",
                        &[
                            (&user_id, Type::TEXT),
                            (&now, Type::INT8),
                            (&reason, Type::TEXT),
                        ],
                    )
                    .await?;
                tx.execute(
                    "UPDATE users SET tokens_valid_after = $2 WHERE id = $1::uuid",
                    &[(&user_id, Type::TEXT), (&now, Type::INT8)],
                )
                .await?;
                Ok(changed(revoked))
            })
            .await
    }
}

impl AuditStore for PgBackend<'_> {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| insert_audit(tx, entry).await)
            .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: Page,
    ) -> Result<(Vec<AuditRecord>, u64), StoreError> {
        // An account filter that is no UUID matches nothing (no entry names such an id).
        if filter.user_id.as_deref().is_some_and(|id| !is_uuid(id)) {
            return Ok((Vec::new(), 0));
        }
        // Every filter is always bound; a NULL one matches everything.
        let user_id = filter.user_id.as_deref();
        let action = filter.action.map(|action| action.as_str());
        let condition = "($1::uuid IS NULL OR actor_id = $1::uuid OR target_id = $1::uuid) \
             AND ($2::text IS NULL OR action = $2) \
             AND ($3::int8 IS NULL OR occurred_at >= $3) \
             AND ($4::int8 IS NULL OR occurred_at < $4)";
        let filters: [Param<'_>; 4] = [
            (&user_id, Type::TEXT),
            (&action, Type::TEXT),
            (&filter.since, Type::INT8),
            (&filter.until, Type::INT8),
        ];
        let (rows, total) = self
            .page_of(
                &format!("FROM audit_log WHERE {condition}"),
                &format!(
                    "SELECT id, occurred_at, action, actor_id::text AS actor_id, \
                       target_id::text AS target_id, request_id, ip, colo, details \
                     FROM audit_log WHERE {condition} ORDER BY id DESC"
                ),
                &filters,
                page,
            )
            .await?;
        let records = rows
            .iter()
            .map(|row| {
                let details: String = row.try_get("details").map_err(read_error)?;
                Ok(AuditRecord {
                    id: row.try_get("id").map_err(read_error)?,
                    occurred_at: row.try_get("occurred_at").map_err(read_error)?,
                    action: row.try_get("action").map_err(read_error)?,
                    actor_id: row.try_get("actor_id").map_err(read_error)?,
                    target_id: row.try_get("target_id").map_err(read_error)?,
                    request_id: row.try_get("request_id").map_err(read_error)?,
                    ip: row.try_get("ip").map_err(read_error)?,
                    colo: row.try_get("colo").map_err(read_error)?,
                    details: serde_json::from_str(&details)
                        .unwrap_or_else(|_| Value::Object(Default::default())),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((records, total))
    }
}

fn token_from(row: &Row) -> Result<IssuedToken, StoreError> {
    Ok(IssuedToken {
        id: row.try_get("id").map_err(read_error)?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        email: row.try_get("email").map_err(read_error)?,
        code_hash: row.try_get("code_hash").map_err(read_error)?,
        attempts: row.try_get("attempts").map_err(read_error)?,
    })
}

const TOKEN_SELECT: &str = "SELECT id::text AS id, user_id::text AS user_id, email, code_hash, \
       attempts FROM one_time_tokens";

impl OneTimeTokenStore for PgBackend<'_> {
    async fn issue_token(&self, token: &NewToken<'_>) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| insert_token(tx, token).await)
            .await
    }

    async fn find_token_by_hash(
        &self,
        purpose: Purpose,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        self.live_token("token_hash = $1", token_hash, purpose, now)
            .await
    }

    async fn find_token_by_email(
        &self,
        purpose: Purpose,
        email: &str,
        now: i64,
    ) -> Result<Option<IssuedToken>, StoreError> {
        self.live_token("email = $1", email, purpose, now).await
    }

    async fn record_failed_code(
        &self,
        token_id: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        if !is_uuid(token_id) {
            return Ok(());
        }
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "UPDATE one_time_tokens SET attempts = attempts + 1, \
                       used_at = CASE WHEN attempts + 1 >= $2 THEN $3 ELSE used_at END, \
                       used_by = CASE WHEN attempts + 1 >= $2 THEN 'too_many_attempts' \
                                 ELSE used_by END \
                     WHERE id = $1::uuid AND used_at IS NULL",
                    &[
                        (&token_id, Type::TEXT),
                        (&max_attempts, Type::INT8),
                        (&now, Type::INT8),
                    ],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn spend_token(
        &self,
        token: &IssuedToken,
        effect: TokenEffect<'_>,
        spend_id: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        if !is_uuid(&token.id) || !is_uuid(&token.user_id) {
            return Ok(None);
        }
        let (id, user_id, email) = (&token.id, &token.user_id, &token.email);
        self.db
            .transaction(async |tx| {
                let spent = tx
                    .execute(
                        "UPDATE one_time_tokens SET used_at = $3, used_by = $2 \
                         WHERE id = $1::uuid AND used_at IS NULL AND expires_at > $3",
                        &[
                            (id, Type::TEXT),
                            (&spend_id, Type::TEXT),
                            (&now, Type::INT8),
                        ],
                    )
                    .await?;
                if spent == 0 {
                    return Ok(None);
                }
                match effect {
                    TokenEffect::VerifyEmail => {
                        tx.execute(
                            "UPDATE users SET email_verified = true, updated_at = $3 \
                             WHERE id = $1::uuid AND email = $2",
                            &[
                                (user_id, Type::TEXT),
                                (email, Type::TEXT),
                                (&now, Type::INT8),
                            ],
                        )
                        .await?;
                    }
                    TokenEffect::ResetPassword { password_hash } => {
                        tx.execute(
                            "UPDATE users SET password_hash = $3, tokens_valid_after = $4, \
                               updated_at = $4, \
                               email_verified = CASE WHEN email = $2 THEN true \
                                                ELSE email_verified END \
                             WHERE id = $1::uuid",
                            &[
                                (user_id, Type::TEXT),
                                (email, Type::TEXT),
                                (&password_hash, Type::TEXT),
                                (&now, Type::INT8),
                            ],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE sessions SET revoked_at = $2, \
                               revoked_reason = 'password_reset' \
                             WHERE user_id = $1::uuid AND revoked_at IS NULL",
                            &[(user_id, Type::TEXT), (&now, Type::INT8)],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE one_time_tokens SET used_at = $2, used_by = 'superseded' \
                             WHERE user_id = $1::uuid AND purpose = 'reset_password' \
                               AND used_at IS NULL",
                            &[(user_id, Type::TEXT), (&now, Type::INT8)],
                        )
                        .await?;
                    }
                    TokenEffect::ChangeEmail => {
                        tx.execute(
                            "UPDATE users SET email = $2, email_verified = true, \
                               updated_at = $3 WHERE id = $1::uuid",
                            &[
                                (user_id, Type::TEXT),
                                (email, Type::TEXT),
                                (&now, Type::INT8),
                            ],
                        )
                        .await?;
                    }
                }
                user_in(tx, user_id).await
            })
            .await
    }

    async fn equivalent_work(&self, now: i64) -> Result<(), StoreError> {
        let week_ago = now - 7 * 86_400;
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "DELETE FROM one_time_tokens WHERE id IN (SELECT id FROM one_time_tokens \
                       WHERE expires_at < $1 AND used_at IS NOT NULL LIMIT 10)",
                    &[(&week_ago, Type::INT8)],
                )
                .await?;
                tx.query(
                    "SELECT COUNT(*) FROM one_time_tokens WHERE expires_at > $1",
                    &[(&now, Type::INT8)],
                )
                .await?;
                Ok(())
            })
            .await
    }
}

impl OutboxStore for PgBackend<'_> {
    async fn store_message(
        &self,
        id: &str,
        message: &Message,
        token: Option<&str>,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let purpose = message.purpose.as_str();
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "INSERT INTO outbox (id, to_address, subject, text_body, html_body, purpose, \
                       token, code, created_at) \
                     VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        (&id, Type::TEXT),
                        (&message.to, Type::TEXT),
                        (&message.subject, Type::TEXT),
                        (&message.text, Type::TEXT),
                        (&message.html, Type::TEXT),
                        (&purpose, Type::TEXT),
                        (&token, Type::TEXT),
                        (&code, Type::TEXT),
                        (&now, Type::INT8),
                    ],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn messages_to(&self, to: &str) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = self
            .db
            .read(
                "SELECT to_address, subject, text_body, html_body, purpose, token, code, \
                   created_at FROM outbox WHERE to_address = $1 \
                 ORDER BY created_at DESC, seq DESC LIMIT 100",
                &[(&to, Type::TEXT)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredMessage {
                    to: row.try_get("to_address").map_err(read_error)?,
                    subject: row.try_get("subject").map_err(read_error)?,
                    text: row.try_get("text_body").map_err(read_error)?,
                    html: row.try_get("html_body").map_err(read_error)?,
                    purpose: row.try_get("purpose").map_err(read_error)?,
                    token: row.try_get("token").map_err(read_error)?,
                    code: row.try_get("code").map_err(read_error)?,
                    created_at: row.try_get("created_at").map_err(read_error)?,
                })
            })
            .collect()
    }
}

/// Rows one statement of the housekeeping deletes at most, and rounds one run goes through.
const CHUNK: i64 = 1_000;
const MAX_ROUNDS: usize = 50;

impl MaintenanceStore for PgBackend<'_> {
    async fn prune(&self, now: i64, audit_cutoff: Option<i64>) -> Result<Pruned, StoreError> {
        let ended = "s.revoked_at IS NOT NULL OR s.idle_expires_at <= $1 \
                     OR s.absolute_expires_at <= $1";
        let mut pruned = Pruned::default();
        for _ in 0..MAX_ROUNDS {
            let round = self
                .db
                .transaction(async |tx| {
                    let refresh_tokens = tx
                        .execute(
                            &format!(
                                "DELETE FROM refresh_tokens WHERE token_hash IN \
                                   (SELECT rt.token_hash FROM refresh_tokens rt \
                                    JOIN sessions s ON s.id = rt.session_id \
                                    WHERE {ended} LIMIT $2)"
                            ),
                            &[(&now, Type::INT8), (&CHUNK, Type::INT8)],
                        )
                        .await?;
                    let sessions = tx
                        .execute(
                            &format!(
                                "DELETE FROM sessions WHERE id IN (SELECT s.id FROM sessions s \
                                   WHERE ({ended}) AND NOT EXISTS \
                                   (SELECT 1 FROM refresh_tokens rt WHERE rt.session_id = s.id) \
                                   LIMIT $2)"
                            ),
                            &[(&now, Type::INT8), (&CHUNK, Type::INT8)],
                        )
                        .await?;
                    let one_time_tokens = tx
                        .execute(
                            "DELETE FROM one_time_tokens WHERE id IN (SELECT id FROM \
                               one_time_tokens WHERE expires_at <= $1 LIMIT $2)",
                            &[(&now, Type::INT8), (&CHUNK, Type::INT8)],
                        )
                        .await?;
                    let audit_entries = match audit_cutoff {
                        Some(cutoff) => {
                            tx.execute(
                                "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log \
                                   WHERE occurred_at < $1 ORDER BY id LIMIT $2)",
                                &[(&cutoff, Type::INT8), (&CHUNK, Type::INT8)],
                            )
                            .await?
                        }
                        None => 0,
                    };
                    Ok([refresh_tokens, sessions, one_time_tokens, audit_entries])
                })
                .await?;
            pruned.refresh_tokens += changed(round[0]);
            pruned.sessions += changed(round[1]);
            pruned.one_time_tokens += changed(round[2]);
            pruned.audit_entries += changed(round[3]);
            pruned.incomplete = round.iter().any(|count| *count >= CHUNK as u64);
            if !pruned.incomplete {
                break;
            }
        }
        Ok(pruned)
    }
}

impl HealthStore for PgBackend<'_> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.read("SELECT 1", &[]).await.map(|_| ())
    }
}

/// SQL: session `$2` is live at `$1` and its account is not banned.
fn live_session() -> String {
    format!(
        "SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $2::uuid AND s.revoked_at IS NULL \
           AND s.idle_expires_at > $1 AND s.absolute_expires_at > $1 AND {}",
        not_banned("$1")
    )
}

impl RefreshTokenStore for PgBackend<'_> {
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<Option<RotatedSession>, StoreError> {
        if !is_uuid(rotation.session_id) {
            return Ok(None);
        }
        let (now, session) = (&rotation.now, &rotation.session_id);
        self.db
            .transaction(async |tx| {
                // Row locks make two uses of one token exclusive: the second waits, then
                // finds it spent.
                let consumed = tx
                    .execute(
                        &format!(
                            "UPDATE refresh_tokens SET used_at = $1, replaced_by = $4 \
                             WHERE token_hash = $3 AND session_id = $2::uuid \
                               AND used_at IS NULL AND expires_at > $1 AND EXISTS ({})",
                            live_session()
                        ),
                        &[
                            (now, Type::INT8),
                            (session, Type::TEXT),
                            (&rotation.presented_hash, Type::TEXT),
                            (&rotation.successor_hash, Type::TEXT),
                        ],
                    )
                    .await?;
                if consumed == 0 {
                    return Ok(None);
                }
                // The account comes back with the session's level, so a refresh needs no
                // second read to keep `aal`/`amr`.
                let rows = tx
                    .query(
                        ROTATION_STEP,
                        &[
                            (now, Type::INT8),
                            (session, Type::TEXT),
                            (&rotation.idle_ttl_seconds, Type::INT8),
                            (&rotation.successor_hash, Type::TEXT),
                        ],
                    )
                    .await?;
                Ok(first_user(&rows)?.map(|mut user| RotatedSession {
                    level: user.session_level.take().unwrap_or_default(),
                    user,
                }))
            })
            .await
    }

    async fn refresh_token_spent_at(
        &self,
        session_id: &str,
        token_hash: &str,
    ) -> Result<Option<Option<i64>>, StoreError> {
        if !is_uuid(session_id) {
            return Ok(None);
        }
        let row = self
            .db
            .read_one(
                "SELECT used_at FROM refresh_tokens \
                 WHERE token_hash = $1 AND session_id = $2::uuid",
                &[(&token_hash, Type::TEXT), (&session_id, Type::TEXT)],
            )
            .await?;
        row.map(|row| row.try_get("used_at").map_err(read_error))
            .transpose()
    }

    async fn session_is_live(&self, session_id: &str, now: i64) -> Result<bool, StoreError> {
        if !is_uuid(session_id) {
            return Ok(false);
        }
        let rows = self
            .db
            .read(
                &live_session(),
                &[(&now, Type::INT8), (&session_id, Type::TEXT)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn session_owner(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        if !is_uuid(session_id) {
            return Ok(None);
        }
        let row = self
            .db
            .read_one(
                "SELECT user_id::text AS user_id FROM sessions WHERE id = $1::uuid",
                &[(&session_id, Type::TEXT)],
            )
            .await?;
        row.map(|row| row.try_get("user_id").map_err(read_error))
            .transpose()
    }
}

/// The columns of an identity.
const IDENTITY_SELECT: &str = "SELECT id::text AS id, user_id::text AS user_id, provider, \
       subject, email, created_at, last_used_at FROM identities";

fn identity_from(row: &Row) -> Result<Identity, StoreError> {
    Ok(Identity {
        id: row.try_get("id").map_err(read_error)?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        provider: row.try_get("provider").map_err(read_error)?,
        subject: row.try_get("subject").map_err(read_error)?,
        email: row.try_get("email").map_err(read_error)?,
        created_at: row.try_get("created_at").map_err(read_error)?,
        last_used_at: row.try_get("last_used_at").map_err(read_error)?,
    })
}

impl IdentityStore for PgBackend<'_> {
    async fn find_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<Identity>, StoreError> {
        self.db
            .read_one(
                &format!("{IDENTITY_SELECT} WHERE provider = $1 AND subject = $2"),
                &[(&provider, Type::TEXT), (&subject, Type::TEXT)],
            )
            .await?
            .as_ref()
            .map(identity_from)
            .transpose()
    }

    async fn identities_of(&self, user_id: &str) -> Result<Vec<Identity>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(Vec::new());
        }
        self.db
            .read(
                &format!("{IDENTITY_SELECT} WHERE user_id = $1::uuid ORDER BY created_at, id"),
                &[(&user_id, Type::TEXT)],
            )
            .await?
            .iter()
            .map(identity_from)
            .collect()
    }

    async fn create_user_with_identity(
        &self,
        user: &NewUser<'_>,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| {
                insert_user(tx, user).await?;
                insert_identity(tx, identity).await?;
                insert_audit(tx, entry).await
            })
            .await
    }

    async fn link_identity(
        &self,
        identity: &NewIdentity<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| {
                insert_identity(tx, identity).await?;
                insert_audit(tx, entry).await
            })
            .await
    }

    async fn touch_identity(
        &self,
        identity_id: &str,
        email: Option<&str>,
        now: i64,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        if !is_uuid(identity_id) {
            return Ok(());
        }
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "UPDATE identities SET last_used_at = $2, email = $3 WHERE id = $1::uuid",
                    &[
                        (&identity_id, Type::TEXT),
                        (&now, Type::INT8),
                        (&email, Type::TEXT),
                    ],
                )
                .await?;
                insert_audit(tx, entry).await
            })
            .await
    }

    async fn unlink_identity(
        &self,
        user_id: &str,
        identity_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        self.remove_sign_in_method(SignInMethod::Identity, user_id, identity_id, entry)
            .await
    }
}

impl OAuthGrantStore for PgBackend<'_> {
    async fn put_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        payload: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let kind = kind.as_str();
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "DELETE FROM oauth_grants WHERE expires_at <= $1",
                    &[(&now, Type::INT8)],
                )
                .await?;
                tx.execute(
                    "INSERT INTO oauth_grants (digest, kind, payload, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        (&digest, Type::TEXT),
                        (&kind, Type::TEXT),
                        (&payload, Type::TEXT),
                        (&now, Type::INT8),
                        (&expires_at, Type::INT8),
                    ],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn take_grant(
        &self,
        kind: GrantKind,
        digest: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let kind = kind.as_str();
        // A write: never retried (it may have landed), so a transaction of its own. Row
        // locks make a concurrent second spend wait, then find no row.
        let rows = self
            .db
            .transaction(async |tx| {
                tx.query(
                    "DELETE FROM oauth_grants WHERE digest = $1 AND kind = $2 \
                     RETURNING payload, expires_at",
                    &[(&digest, Type::TEXT), (&kind, Type::TEXT)],
                )
                .await
            })
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("expires_at").map_err(read_error)?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(row.try_get("payload").map_err(read_error)?))
    }
}

fn factor_from(row: &Row) -> Result<Factor, StoreError> {
    Ok(Factor {
        id: row.try_get("id").map_err(read_error)?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        kind: row.try_get("kind").map_err(read_error)?,
        sealed_secret: row.try_get("secret").map_err(read_error)?,
        confirmed_at: row.try_get("confirmed_at").map_err(read_error)?,
        last_used_step: row.try_get("last_used_step").map_err(read_error)?,
        created_at: row.try_get("created_at").map_err(read_error)?,
    })
}

/// Replace an account's recovery codes inside a transaction.
async fn set_recovery_codes(
    tx: &Transaction,
    user_id: &str,
    digests: &[String],
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM recovery_codes WHERE user_id = $1::uuid",
        &[(&user_id, Type::TEXT)],
    )
    .await?;
    tx.execute(
        "INSERT INTO recovery_codes (user_id, digest) SELECT $1::uuid, unnest($2::text[])",
        &[(&user_id, Type::TEXT), (&digests, Type::TEXT_ARRAY)],
    )
    .await?;
    Ok(())
}

/// Record a live session's level inside a transaction (or alone).
const RAISE_SESSION: &str = "UPDATE sessions SET aal = $3, amr = $4, aal2_at = $5 \
     WHERE id = $1::uuid AND user_id = $2::uuid AND revoked_at IS NULL";

impl FactorStore for PgBackend<'_> {
    async fn factors_of(&self, user_id: &str) -> Result<Vec<Factor>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .read(
                "SELECT id::text AS id, user_id::text AS user_id, kind, secret, confirmed_at, \
                   last_used_step, created_at \
                 FROM mfa_factors WHERE user_id = $1::uuid ORDER BY created_at, id",
                &[(&user_id, Type::TEXT)],
            )
            .await?;
        rows.iter().map(factor_from).collect()
    }

    async fn put_pending_totp(&self, factor: &NewFactor<'_>) -> Result<bool, StoreError> {
        if !is_uuid(factor.user_id) || !is_uuid(factor.id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                // The account's row lock serialises its enrolments.
                if !user_exists(tx, factor.user_id).await? {
                    return Ok(false);
                }
                tx.execute(
                    "DELETE FROM mfa_factors WHERE user_id = $1::uuid AND confirmed_at IS NULL",
                    &[(&factor.user_id, Type::TEXT)],
                )
                .await?;
                let inserted = tx
                    .execute(
                        "INSERT INTO mfa_factors (id, user_id, kind, secret, created_at) \
                         SELECT $1::uuid, $2::uuid, 'totp', $3, $4 \
                         WHERE NOT EXISTS (SELECT 1 FROM mfa_factors \
                           WHERE user_id = $2::uuid AND confirmed_at IS NOT NULL)",
                        &[
                            (&factor.id, Type::TEXT),
                            (&factor.user_id, Type::TEXT),
                            (&factor.sealed_secret, Type::TEXT),
                            (&factor.now, Type::INT8),
                        ],
                    )
                    .await?;
                Ok(inserted > 0)
            })
            .await
    }

    async fn confirm_totp(&self, c: &Confirmation<'_>) -> Result<bool, StoreError> {
        if !is_uuid(c.factor_id) || !is_uuid(c.user_id) || !is_uuid(c.session_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                // The flip first: its row lock makes a concurrent confirmation wait, then
                // find the factor confirmed and change nothing.
                let confirmed = tx
                    .execute(
                        "UPDATE mfa_factors SET confirmed_at = $3, last_used_step = $4 \
                         WHERE id = $1::uuid AND user_id = $2::uuid AND confirmed_at IS NULL",
                        &[
                            (&c.factor_id, Type::TEXT),
                            (&c.user_id, Type::TEXT),
                            (&c.now, Type::INT8),
                            (&c.step, Type::INT8),
                        ],
                    )
                    .await?;
                if confirmed == 0 {
                    return Ok(false);
                }
                set_recovery_codes(tx, c.user_id, c.recovery_digests).await?;
                tx.execute(
                    RAISE_SESSION,
                    &[
                        (&c.session_id, Type::TEXT),
                        (&c.user_id, Type::TEXT),
                        (&c.level.aal.as_str(), Type::TEXT),
                        (&c.level.amr_json(), Type::TEXT),
                        (&c.level.aal2_at, Type::INT8),
                    ],
                )
                .await?;
                insert_audit(tx, c.entry).await?;
                Ok(true)
            })
            .await
    }

    async fn use_totp_step(&self, factor_id: &str, step: i64) -> Result<bool, StoreError> {
        if !is_uuid(factor_id) {
            return Ok(false);
        }
        // One UPDATE: under READ COMMITTED a concurrent second one waits for the row, then
        // re-checks the condition against the new step and changes nothing.
        let changed = self
            .db
            .transaction(async |tx| {
                tx.execute(
                    "UPDATE mfa_factors SET last_used_step = $2 \
                     WHERE id = $1::uuid AND confirmed_at IS NOT NULL \
                       AND (last_used_step IS NULL OR last_used_step < $2)",
                    &[(&factor_id, Type::TEXT), (&step, Type::INT8)],
                )
                .await
            })
            .await?;
        Ok(changed > 0)
    }

    async fn use_recovery_code(
        &self,
        user_id: &str,
        digest: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if !is_uuid(user_id) {
            return Ok(false);
        }
        let changed = self
            .db
            .transaction(async |tx| {
                tx.execute(
                    "UPDATE recovery_codes SET used_at = $3 \
                     WHERE user_id = $1::uuid AND digest = $2 AND used_at IS NULL",
                    &[
                        (&user_id, Type::TEXT),
                        (&digest, Type::TEXT),
                        (&now, Type::INT8),
                    ],
                )
                .await
            })
            .await?;
        Ok(changed > 0)
    }

    async fn recovery_codes_remaining(&self, user_id: &str) -> Result<u64, StoreError> {
        if !is_uuid(user_id) {
            return Ok(0);
        }
        count_of(
            &self
                .db
                .read(
                    "SELECT COUNT(*) FROM recovery_codes \
                     WHERE user_id = $1::uuid AND used_at IS NULL",
                    &[(&user_id, Type::TEXT)],
                )
                .await?,
        )
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        digests: &[String],
        _now: i64,
        entry: &AuditEntry,
    ) -> Result<bool, StoreError> {
        if !is_uuid(user_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                // Lock the confirmed factor, so a concurrent removal waits or is seen.
                let confirmed = tx
                    .query(
                        "SELECT 1 FROM mfa_factors \
                         WHERE user_id = $1::uuid AND confirmed_at IS NOT NULL FOR UPDATE",
                        &[(&user_id, Type::TEXT)],
                    )
                    .await?;
                if confirmed.is_empty() {
                    return Ok(false);
                }
                set_recovery_codes(tx, user_id, digests).await?;
                insert_audit(tx, entry).await?;
                Ok(true)
            })
            .await
    }

    async fn remove_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        if !is_uuid(user_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "DELETE FROM recovery_codes WHERE user_id = $1::uuid",
                    &[(&user_id, Type::TEXT)],
                )
                .await?;
                let removed = tx
                    .execute(
                        "DELETE FROM mfa_factors WHERE user_id = $1::uuid",
                        &[(&user_id, Type::TEXT)],
                    )
                    .await?;
                if removed == 0 {
                    return Ok(false);
                }
                insert_audit(tx, entry).await?;
                Ok(true)
            })
            .await
    }

    async fn reset_factors(&self, user_id: &str, entry: &AuditEntry) -> Result<bool, StoreError> {
        if !is_uuid(user_id) {
            return Ok(false);
        }
        self.db
            .transaction(async |tx| {
                let mut removed = 0;
                for table in ["recovery_codes", "mfa_factors", "passkeys"] {
                    removed += tx
                        .execute(
                            &format!("DELETE FROM {table} WHERE user_id = $1::uuid"),
                            &[(&user_id, Type::TEXT)],
                        )
                        .await?;
                }
                if removed == 0 {
                    return Ok(false);
                }
                insert_audit(tx, entry).await?;
                Ok(true)
            })
            .await
    }

    async fn raise_session(
        &self,
        session_id: &str,
        user_id: &str,
        level: &SessionLevel,
    ) -> Result<bool, StoreError> {
        if !is_uuid(session_id) || !is_uuid(user_id) {
            return Ok(false);
        }
        let changed = self
            .db
            .transaction(async |tx| {
                tx.execute(
                    RAISE_SESSION,
                    &[
                        (&session_id, Type::TEXT),
                        (&user_id, Type::TEXT),
                        (&level.aal.as_str(), Type::TEXT),
                        (&level.amr_json(), Type::TEXT),
                        (&level.aal2_at, Type::INT8),
                    ],
                )
                .await
            })
            .await?;
        Ok(changed > 0)
    }
}

const PASSKEY_SELECT: &str = "SELECT id::text AS id, user_id::text AS user_id, credential_id, \
       public_key, algorithm, sign_count, name, aaguid, backup_eligible, backed_up, transports, \
       created_at, last_used_at FROM passkeys";

fn passkey_from(row: &Row) -> Result<Passkey, StoreError> {
    let transports: String = row.try_get("transports").map_err(read_error)?;
    Ok(Passkey {
        id: row.try_get("id").map_err(read_error)?,
        user_id: row.try_get("user_id").map_err(read_error)?,
        credential_id: row.try_get("credential_id").map_err(read_error)?,
        public_key: row.try_get("public_key").map_err(read_error)?,
        algorithm: row.try_get("algorithm").map_err(read_error)?,
        sign_count: row.try_get("sign_count").map_err(read_error)?,
        name: row.try_get("name").map_err(read_error)?,
        aaguid: row.try_get("aaguid").map_err(read_error)?,
        backup_eligible: row.try_get("backup_eligible").map_err(read_error)?,
        backed_up: row.try_get("backed_up").map_err(read_error)?,
        transports: split_transports(&transports),
        created_at: row.try_get("created_at").map_err(read_error)?,
        last_used_at: row.try_get("last_used_at").map_err(read_error)?,
    })
}

impl PasskeyStore for PgBackend<'_> {
    async fn add_passkey(
        &self,
        passkey: &NewPasskey<'_>,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "INSERT INTO passkeys (id, user_id, credential_id, public_key, algorithm, \
                       sign_count, name, aaguid, backup_eligible, backed_up, transports, \
                       created_at) \
                     VALUES ($1::uuid, $2::uuid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    &[
                        (&passkey.id, Type::TEXT),
                        (&passkey.user_id, Type::TEXT),
                        (&passkey.credential_id, Type::TEXT),
                        (&passkey.public_key, Type::TEXT),
                        (&passkey.algorithm, Type::INT8),
                        (&passkey.sign_count, Type::INT8),
                        (&passkey.name, Type::TEXT),
                        (&passkey.aaguid, Type::TEXT),
                        (&passkey.backup_eligible, Type::BOOL),
                        (&passkey.backed_up, Type::BOOL),
                        (&passkey.transports, Type::TEXT),
                        (&passkey.now, Type::INT8),
                    ],
                )
                .await?;
                insert_audit(tx, entry).await
            })
            .await
    }

    async fn passkeys_of(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        if !is_uuid(user_id) {
            return Ok(Vec::new());
        }
        self.db
            .read(
                &format!("{PASSKEY_SELECT} WHERE user_id = $1::uuid ORDER BY created_at, id"),
                &[(&user_id, Type::TEXT)],
            )
            .await?
            .iter()
            .map(passkey_from)
            .collect()
    }

    async fn find_passkey(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        self.db
            .read_one(
                &format!("{PASSKEY_SELECT} WHERE credential_id = $1"),
                &[(&credential_id, Type::TEXT)],
            )
            .await?
            .as_ref()
            .map(passkey_from)
            .transpose()
    }

    async fn record_passkey_use(&self, used: &PasskeyUse<'_>) -> Result<(), StoreError> {
        if !is_uuid(used.passkey_id) {
            return Ok(());
        }
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "UPDATE passkeys SET last_used_at = $2, backed_up = $3, \
                       sign_count = GREATEST(sign_count, $4) WHERE id = $1::uuid",
                    &[
                        (&used.passkey_id, Type::TEXT),
                        (&used.now, Type::INT8),
                        (&used.backed_up, Type::BOOL),
                        (&used.sign_count, Type::INT8),
                    ],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn rename_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        name: &str,
        entry: &AuditEntry,
    ) -> Result<Option<Passkey>, StoreError> {
        if !is_uuid(user_id) || !is_uuid(passkey_id) {
            return Ok(None);
        }
        self.db
            .transaction(async |tx| {
                let rows = tx
                    .query(
                        &format!(
                            "WITH renamed AS (UPDATE passkeys SET name = $3 \
                               WHERE id = $1::uuid AND user_id = $2::uuid RETURNING *) \
                             {}",
                            PASSKEY_SELECT.replace("FROM passkeys", "FROM renamed")
                        ),
                        &[
                            (&passkey_id, Type::TEXT),
                            (&user_id, Type::TEXT),
                            (&name, Type::TEXT),
                        ],
                    )
                    .await?;
                let Some(row) = rows.first() else {
                    return Ok(None);
                };
                let passkey = passkey_from(row)?;
                insert_audit(tx, entry).await?;
                Ok(Some(passkey))
            })
            .await
    }

    async fn delete_passkey(
        &self,
        user_id: &str,
        passkey_id: &str,
        entry: &AuditEntry,
    ) -> Result<Unlink, StoreError> {
        self.remove_sign_in_method(SignInMethod::Passkey, user_id, passkey_id, entry)
            .await
    }

    async fn put_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let purpose = purpose.as_str();
        let user_id = user_id.filter(|id| is_uuid(id));
        self.db
            .transaction(async |tx| {
                tx.execute(
                    "DELETE FROM webauthn_challenges WHERE expires_at <= $1",
                    &[(&now, Type::INT8)],
                )
                .await?;
                tx.execute(
                    "INSERT INTO webauthn_challenges (digest, purpose, user_id, created_at, \
                       expires_at) VALUES ($1, $2, $3::uuid, $4, $5)",
                    &[
                        (&digest, Type::TEXT),
                        (&purpose, Type::TEXT),
                        (&user_id, Type::TEXT),
                        (&now, Type::INT8),
                        (&expires_at, Type::INT8),
                    ],
                )
                .await?;
                Ok(())
            })
            .await
    }

    async fn take_challenge(
        &self,
        digest: &str,
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<SpentChallenge>, StoreError> {
        let purpose = purpose.as_str();
        // A write: a transaction of its own, never retried. Row locks make a concurrent
        // second spend wait, then find no row.
        let rows = self
            .db
            .transaction(async |tx| {
                tx.query(
                    "DELETE FROM webauthn_challenges WHERE digest = $1 AND purpose = $2 \
                     RETURNING user_id::text AS user_id, expires_at",
                    &[(&digest, Type::TEXT), (&purpose, Type::TEXT)],
                )
                .await
            })
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("expires_at").map_err(read_error)?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(SpentChallenge {
            user_id: row.try_get("user_id").map_err(read_error)?,
        }))
    }
}
