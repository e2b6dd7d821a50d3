-- PostgreSQL twin of migrations/0005_identities.sql: provider identities linked to
-- accounts, and the one-time values (state, exchange code, link ticket) of the redirect flow.

-- A subject belongs to one account, and an account has at most one identity per provider.
-- The constraint names are part of the contract: the store maps SQLSTATE 23505 on either to
-- "identity taken".
CREATE TABLE identities (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL,
    email         text COLLATE "C",
    created_at    bigint NOT NULL,
    last_used_at  bigint NOT NULL,
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject),
    CONSTRAINT identities_user_provider_key UNIQUE (user_id, provider)
);
CREATE INDEX identities_by_user ON identities (user_id);

-- One-time values, by SHA-256 digest; spent by one `DELETE ... RETURNING`, which row locks
-- make atomic: of two concurrent spends, the second finds no row.
CREATE TABLE oauth_grants (
    digest      text PRIMARY KEY,
    kind        text NOT NULL CONSTRAINT oauth_grants_kind_check CHECK (kind IN ('state', 'code', 'link')),
    payload     text NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL
);
CREATE INDEX oauth_grants_by_expiry ON oauth_grants (expires_at);
