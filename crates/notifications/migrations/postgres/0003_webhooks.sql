-- Outbound webhooks (notifications::webhooks): endpoints admins register, one message per
-- (endpoint, event) to deliver, and every delivery attempt with its answer.
CREATE TABLE webhook_endpoints (
    id                    UUID PRIMARY KEY,
    url                   TEXT NOT NULL,
    description           TEXT NOT NULL,
    -- JSON array of event-type patterns.
    event_types           TEXT NOT NULL,
    secret                TEXT NOT NULL,
    -- The secret before the last rotation, still signing until previous_secret_until.
    previous_secret       TEXT,
    previous_secret_until TIMESTAMPTZ,
    enabled               BOOLEAN NOT NULL,
    disabled_reason       TEXT,
    -- Failed attempts in a row, and when the first of them happened.
    failure_streak        BIGINT NOT NULL DEFAULT 0,
    streak_started_at     TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

-- Scheduling columns are milliseconds since the Unix epoch, as in notification_deliveries.
CREATE TABLE webhook_messages (
    id              UUID PRIMARY KEY,
    endpoint_id     UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    claim_token     UUID,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    CONSTRAINT webhook_messages_once UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_messages_due ON webhook_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_messages_by_endpoint ON webhook_messages (endpoint_id, id);

CREATE TABLE webhook_attempts (
    id           UUID PRIMARY KEY,
    message_id   UUID NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    attempted_at TIMESTAMPTZ NOT NULL,
    status_code  BIGINT,
    latency_ms   BIGINT NOT NULL,
    error        TEXT
);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts (message_id, id);
