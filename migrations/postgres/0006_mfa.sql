-- PostgreSQL twin of migrations/0006_mfa.sql: TOTP factors (secret sealed at rest), recovery
-- codes as digests, the level a session reached, and the `mfa` kind of one-time value.

CREATE TABLE mfa_factors (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text COLLATE "C" NOT NULL CONSTRAINT mfa_factors_kind_check CHECK (kind IN ('totp')),
    secret          text COLLATE "C" NOT NULL,
    confirmed_at    bigint,
    last_used_step  bigint,
    created_at      bigint NOT NULL,
    CONSTRAINT mfa_factors_user_kind_key UNIQUE (user_id, kind)
);

CREATE TABLE recovery_codes (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest      text COLLATE "C" NOT NULL,
    used_at     bigint,
    PRIMARY KEY (user_id, digest)
);

ALTER TABLE sessions
    ADD COLUMN aal text NOT NULL DEFAULT 'aal1' CONSTRAINT sessions_aal_check CHECK (aal IN ('aal1', 'aal2')),
    ADD COLUMN amr text NOT NULL DEFAULT '[]',
    ADD COLUMN aal2_at bigint;

-- PostgreSQL alters a CHECK in place (D1 rebuilds the table).
ALTER TABLE oauth_grants DROP CONSTRAINT oauth_grants_kind_check;
ALTER TABLE oauth_grants ADD CONSTRAINT oauth_grants_kind_check
    CHECK (kind IN ('state', 'code', 'link', 'mfa'));
