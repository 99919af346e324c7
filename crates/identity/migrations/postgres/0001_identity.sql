-- Identity owns these tables; no other context reads them.
CREATE TABLE users (
    id                UUID PRIMARY KEY,
    email             TEXT NOT NULL,
    name              TEXT NOT NULL,
    password_hash     TEXT NOT NULL,
    role              TEXT NOT NULL CHECK (role IN ('customer', 'support', 'catalog_manager', 'fulfilment', 'admin')),
    status            TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'deleted')),
    email_verified_at TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_role_status ON users (role, status);

-- A session is one refresh-token family: every rotation stays inside it, reuse revokes all of it.
CREATE TABLE sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id),
    user_agent     TEXT NOT NULL,
    ip             TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX sessions_user ON sessions (user_id, revoked_at);

-- Only SHA-256 digests of refresh tokens are stored.
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE one_time_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    purpose    TEXT NOT NULL CHECK (purpose IN ('email_verification', 'password_reset')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);

CREATE TABLE audit_events (
    id            UUID PRIMARY KEY,
    occurred_at   TIMESTAMPTZ NOT NULL,
    kind          TEXT NOT NULL,
    user_id       UUID,
    actor_id      UUID,
    subject_email TEXT,
    ip            TEXT,
    user_agent    TEXT,
    detail        TEXT
);
CREATE INDEX audit_events_by_email ON audit_events (kind, subject_email, occurred_at);
CREATE INDEX audit_events_by_ip ON audit_events (kind, ip, occurred_at);
CREATE INDEX audit_events_by_user ON audit_events (user_id, id);

-- Ed25519 signing keys. Retired keys stay published in the JWKS until tokens they signed expire.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    retired_at  TIMESTAMPTZ
);
