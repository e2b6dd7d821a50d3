-- Email flows: one-time tokens for verification, password reset and email change, and the
-- development outbox.

-- A token is spent by its first use (`used_at`, with `used_by` naming the request that spent
-- it, so the statements acting on that use can check it was theirs). A new token of a purpose
-- spends the older ones of that purpose. `email` is the address the message went to: for
-- `change_email`, the new address.
CREATE TABLE one_time_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    token_hash  TEXT NOT NULL UNIQUE,
    code_hash   TEXT NOT NULL,
    email       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    used_by     TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_by_email ON one_time_tokens (email, purpose);

-- Messages of the `outbox` provider (development only): what a real provider would deliver,
-- readable at GET /api/v1/dev/outbox.
CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    token       TEXT,
    code        TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX outbox_by_recipient ON outbox (to_address, created_at);
