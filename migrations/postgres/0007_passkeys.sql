-- PostgreSQL twin of migrations/0007_passkeys.sql: passkeys (WebAuthn credentials) and the
-- single-use challenges of their ceremonies. 0006 is the TOTP second factors' (another
-- branch); the two do not touch each other's tables.

-- `credential_id` (base64url) is unique across accounts; the constraint's name is part of
-- the contract: the store maps SQLSTATE 23505 on it to "passkey taken". `sign_count` only
-- moves forward (the store's update is conditional).
CREATE TABLE passkeys (
    id               uuid PRIMARY KEY,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id    text COLLATE "C" NOT NULL CONSTRAINT passkeys_credential_id_key UNIQUE,
    public_key       text COLLATE "C" NOT NULL,
    algorithm        bigint NOT NULL,
    sign_count       bigint NOT NULL DEFAULT 0,
    name             text NOT NULL,
    aaguid           text COLLATE "C" NOT NULL,
    backup_eligible  boolean NOT NULL,
    backed_up        boolean NOT NULL,
    transports       text COLLATE "C" NOT NULL DEFAULT '',
    created_at       bigint NOT NULL,
    last_used_at     bigint
);
CREATE INDEX passkeys_by_user ON passkeys (user_id);

-- Challenges by SHA-256 digest, spent by one `DELETE ... RETURNING` (row locks make a
-- concurrent second spend find no row). `user_id` NULL: a passwordless sign-in's.
CREATE TABLE webauthn_challenges (
    digest      text COLLATE "C" PRIMARY KEY,
    purpose     text NOT NULL CONSTRAINT webauthn_challenges_purpose_check
                    CHECK (purpose IN ('registration', 'authentication')),
    user_id     uuid REFERENCES users (id) ON DELETE CASCADE,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL
);
CREATE INDEX webauthn_challenges_by_expiry ON webauthn_challenges (expires_at);
