-- Sign-in through OpenID Connect and OAuth providers: the provider identities linked to an
-- account, and the one-time values of the redirect flow.

-- One row per (provider, subject) the service has seen: the provider's stable account id
-- (`sub`, or GitHub's numeric id) and the account it belongs to. A subject belongs to one
-- account, and an account has at most one identity per provider, so "which account is this"
-- and "unlink GitHub" each have one answer. `email` is the address the provider last
-- asserted (informational: linking decisions read the account's own email).
CREATE TABLE identities (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    email         TEXT,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    UNIQUE (provider, subject),
    UNIQUE (user_id, provider)
);
CREATE INDEX identities_by_user ON identities (user_id);

-- The one-time values of the redirect flow: `state` (10 minutes; what the callback needs to
-- finish: provider, redirect target, nonce, PKCE verifier, the app's challenge) and `code`
-- (60 seconds; the account an app exchanges it for, or the provider account a link completes
-- with) and `link` (60 seconds; a signed-in account's request to link, taken to `start`).
-- Kept here rather than in KV because a value must be spendable once only: KV is eventually
-- consistent and has no read-and-delete, while one `DELETE ... RETURNING` on this table is
-- atomic, so of two concurrent spends exactly one gets the row. Only a SHA-256 digest of the value is stored.
-- Expired rows are swept whenever a new value is stored.
CREATE TABLE oauth_grants (
    digest      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('state', 'code', 'link')),
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oauth_grants_by_expiry ON oauth_grants (expires_at);
