-- Second factors: an authenticator app (TOTP) per account, its recovery codes, the level a
-- session reached, and the one-time `mfa_token` between a right password and the code.

-- One TOTP factor per account. `secret` is sealed (AES-256-GCM under a key derived from
-- IDENTIFIER_DIGEST_KEY: `v1.<nonce>.<ciphertext>`), never the plain base32: the service
-- must recompute codes, so it cannot be hashed, and a copy of the database alone must not
-- hand out every account's second factor. `confirmed_at` is NULL while the enrolment waits
-- for its first code; only a confirmed factor is asked for at sign-in. `last_used_step` is
-- the TOTP time step last accepted: a code of that step or an earlier one is refused, by
-- one compare-and-set UPDATE, so two requests with one code cannot both pass.
CREATE TABLE mfa_factors (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('totp')),
    secret          TEXT NOT NULL,
    confirmed_at    INTEGER,
    last_used_step  INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (user_id, kind)
);

-- Recovery codes, as user-bound SHA-256 digests (domain::recovery); `used_at` is set once,
-- by a compare-and-set UPDATE, so a code works once.
CREATE TABLE recovery_codes (
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest      TEXT NOT NULL,
    used_at     INTEGER,
    PRIMARY KEY (user_id, digest)
);

-- What a session proved: `aal2` once it proved a second factor, the RFC 8176 methods as a
-- JSON array, and when it last proved the second factor (step-up reads it).
ALTER TABLE sessions ADD COLUMN aal TEXT NOT NULL DEFAULT 'aal1' CHECK (aal IN ('aal1', 'aal2'));
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN aal2_at INTEGER;

-- The `mfa_token` is a one-time value like the provider flow's: spent by one
-- `DELETE ... RETURNING`. SQLite cannot alter a CHECK constraint, so the table is rebuilt
-- with the new kind (a second table would duplicate the store code and the sweep for no
-- gain). The rows are copied; no foreign key points at this table.
CREATE TABLE oauth_grants_new (
    digest      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('state', 'code', 'link', 'mfa')),
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
INSERT INTO oauth_grants_new (digest, kind, payload, created_at, expires_at)
    SELECT digest, kind, payload, created_at, expires_at FROM oauth_grants;
DROP TABLE oauth_grants;
ALTER TABLE oauth_grants_new RENAME TO oauth_grants;
CREATE INDEX oauth_grants_by_expiry ON oauth_grants (expires_at);
