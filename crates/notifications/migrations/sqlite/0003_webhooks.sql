-- SQLite flavour of ../postgres/0003_webhooks.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339
-- TEXT, booleans as 0/1.
-- Outbound webhooks (notifications::webhooks): endpoints admins register, one message per
-- (endpoint, event) to deliver, and every delivery attempt with its answer.
CREATE TABLE webhook_endpoints (
    id                    BLOB PRIMARY KEY,
    url                   TEXT NOT NULL,
    description           TEXT NOT NULL,
    -- JSON array of event-type patterns.
    event_types           TEXT NOT NULL,
    secret                TEXT NOT NULL,
    -- The secret before the last rotation, still signing until previous_secret_until.
    previous_secret       TEXT,
    previous_secret_until TEXT,
    enabled               INTEGER NOT NULL,
    disabled_reason       TEXT,
    -- Failed attempts in a row, and when the first of them happened.
    failure_streak        INTEGER NOT NULL DEFAULT 0,
    streak_started_at     TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

-- Scheduling columns are milliseconds since the Unix epoch, as in notification_deliveries.
CREATE TABLE webhook_messages (
    id              BLOB PRIMARY KEY,
    endpoint_id     BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        BLOB NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    claim_token     BLOB,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    delivered_at    TEXT,
    CONSTRAINT webhook_messages_once UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_by_endpoint ON webhook_messages (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id           BLOB PRIMARY KEY,
    message_id   BLOB NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempted_at TEXT NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, id);
