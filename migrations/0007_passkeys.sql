-- Passkeys (WebAuthn credentials) and the single-use challenges of their ceremonies.
-- Numbered 0007: 0006 is the TOTP second factors' (mfa_factors, recovery_codes), built on
-- another branch; the two do not touch each other's tables.

-- One row per registered credential. `credential_id` is the authenticator's id of it
-- (base64url, unpadded), unique across accounts: an assertion names its credential by it,
-- and a passwordless sign-in finds the account through it. `public_key` is the COSE_Key as
-- the authenticator sent it (base64url), `algorithm` its COSE identifier (-7, -8, -257).
-- `sign_count` only moves forward (the store's update is conditional). `aaguid` names the
-- authenticator model (all zeros for most synced passkeys); `backup_eligible` is fixed for
-- the credential's life, `backed_up` may change; `transports` is a comma list of hints
-- handed back in options. Removed with the account.
CREATE TABLE passkeys (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    TEXT NOT NULL UNIQUE,
    public_key       TEXT NOT NULL,
    algorithm        INTEGER NOT NULL,
    sign_count       INTEGER NOT NULL DEFAULT 0,
    name             TEXT NOT NULL,
    aaguid           TEXT NOT NULL,
    backup_eligible  INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    backed_up        INTEGER NOT NULL CHECK (backed_up IN (0, 1)),
    transports       TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    last_used_at     INTEGER
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- The challenges of registration and authentication ceremonies: 5 minutes, spent once by
-- one `DELETE ... RETURNING` (of two concurrent spends exactly one gets the row), stored
-- only as the SHA-256 digest of the challenge. `user_id` is the account a registration (or
-- a second-factor assertion) is for; NULL for a passwordless sign-in, where nobody is
-- identified yet.
--
-- Why not a new kind in oauth_grants: SQLite cannot alter that table's CHECK on `kind`
-- without rebuilding the table, and a challenge needs its own columns (purpose, account)
-- rather than a JSON payload; a table of its own keeps both backends' schemas alike.
-- Expired rows are swept whenever a new challenge is stored.
CREATE TABLE webauthn_challenges (
    digest      TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('registration', 'authentication')),
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX webauthn_challenges_by_expiry ON webauthn_challenges (expires_at);
