-- PostgreSQL twin of migrations/0001_init.sql: accounts, roles, sessions and their refresh
-- tokens. Same tables and columns, so the same logical queries run on both backends.
--
-- Types: every time is a `bigint` of unix seconds (the service's one time representation);
-- ids the Worker generates as UUIDs are `uuid`; flags are `boolean`; counters are `bigint`
-- too, so the Rust side reads every integer as i64 on both backends.
--
-- Usernames and emails use the "C" collation: byte order, as SQLite's default BINARY. The
-- admin search reads prefix ranges (`username >= $1 AND username < $2`) whose upper bound
-- assumes code-point order, which a linguistic collation (en_US...) does not follow. Every
-- email column shares it, so comparing two of them never mixes collations.

-- Accounts. Usernames and emails are stored in canonical lower-case form, so the unique
-- constraints make them unique case-insensitively; several accounts may have no email.
-- The constraint names are part of the contract: the store maps SQLSTATE 23505 on
-- `users_username_key` / `users_email_key` to "username taken" / "email taken".
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    username        text COLLATE "C" NOT NULL CONSTRAINT users_username_key UNIQUE,
    email           text COLLATE "C" CONSTRAINT users_email_key UNIQUE,
    password_hash   text NOT NULL,
    email_verified  boolean NOT NULL DEFAULT false,
    -- Access tokens issued before this moment are refused (logout from every device).
    tokens_valid_after bigint NOT NULL DEFAULT 0,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL
);

-- Role names; seeded here so every database starts with the same two.
CREATE TABLE roles (
    name        text PRIMARY KEY,
    description text NOT NULL
);
INSERT INTO roles (name, description) VALUES
    ('user', 'Every account; granted at signup'),
    ('admin', 'Administers accounts; granted only from the command line')
ON CONFLICT (name) DO NOTHING;

CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL REFERENCES roles (name),
    granted_at  bigint NOT NULL,
    PRIMARY KEY (user_id, role)
);

-- One row per login. Access tokens carry the session id (`sid`); a revoked or expired
-- session invalidates its access and refresh tokens. Each refresh pushes the idle expiry
-- forward, never past the absolute one.
CREATE TABLE sessions (
    id                   uuid PRIMARY KEY,
    user_id              uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at           bigint NOT NULL,
    last_used_at         bigint NOT NULL,
    idle_expires_at      bigint NOT NULL,
    absolute_expires_at  bigint NOT NULL,
    revoked_at           bigint,
    -- logout, logout_all, password_change, reuse_detected, revoked_by_user, ...
    revoked_reason       text,
    user_agent           text,
    colo                 text,
    country              text
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Refresh tokens, stored only as SHA-256 digests (text, not UUIDs). Each is single use:
-- using it sets `used_at` and names its successor's digest in `replaced_by`.
CREATE TABLE refresh_tokens (
    token_hash   text PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at   bigint NOT NULL,
    expires_at   bigint NOT NULL,
    used_at      bigint,
    replaced_by  text
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
