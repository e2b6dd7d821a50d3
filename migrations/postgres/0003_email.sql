-- PostgreSQL twin of migrations/0003_email.sql: one-time tokens for verification, password
-- reset and email change, and the development outbox.

-- A token is spent by its first use (`used_at`, with `used_by` naming the request that spent
-- it, so the statements acting on that use can check it was theirs; it also holds the
-- markers 'superseded' and 'too_many_attempts', hence text). A new token of a purpose
-- spends the older ones of that purpose. `email` is the address the message went to: for
-- `change_email`, the new address.
CREATE TABLE one_time_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     text NOT NULL
                CONSTRAINT one_time_tokens_purpose_check
                CHECK (purpose IN ('verify_email', 'reset_password', 'change_email')),
    token_hash  text NOT NULL CONSTRAINT one_time_tokens_token_hash_key UNIQUE,
    code_hash   text NOT NULL,
    email       text COLLATE "C" NOT NULL,
    created_at  bigint NOT NULL,
    expires_at  bigint NOT NULL,
    used_at     bigint,
    used_by     text,
    attempts    bigint NOT NULL DEFAULT 0
);
CREATE INDEX one_time_tokens_by_user ON one_time_tokens (user_id, purpose);
CREATE INDEX one_time_tokens_by_email ON one_time_tokens (email, purpose);

-- Messages of the `outbox` provider (development only): what a real provider would deliver,
-- readable at GET /api/v1/dev/outbox. There is no rowid here: a listing that breaks ties of
-- `created_at` by D1's rowid needs another tie-breaker on PostgreSQL.
CREATE TABLE outbox (
    id          uuid PRIMARY KEY,
    to_address  text COLLATE "C" NOT NULL,
    subject     text NOT NULL,
    text_body   text NOT NULL,
    html_body   text NOT NULL,
    purpose     text NOT NULL,
    token       text,
    code        text,
    created_at  bigint NOT NULL,
    -- Insertion order, to list messages stored in the same second newest first (D1's rowid).
    seq         bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX outbox_by_recipient ON outbox (to_address, created_at);
