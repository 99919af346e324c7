-- Notifications owns these tables; no other context reads them.

-- Who order mails go to: kept from identity's events (order events carry a user id only).
CREATE TABLE notification_recipients (
    user_id    UUID PRIMARY KEY,
    email      TEXT NOT NULL,
    name       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notification_recipients_email ON notification_recipients (lower(email));

-- Per-user choices; transactional mail is not a preference and has no column.
CREATE TABLE notification_preferences (
    user_id          UUID PRIMARY KEY,
    marketing        BOOLEAN NOT NULL,
    low_stock_alerts BOOLEAN NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- The delivery log: one row per message. Handling an event only inserts rows (unique per event,
-- template and recipient, so a redelivered event is a no-op); the delivery worker sends them.
-- Scheduling columns are milliseconds since the Unix epoch (exact and comparable on both backends).
CREATE TABLE notification_deliveries (
    id              UUID PRIMARY KEY,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('email_verification', 'password_reset', 'order_placed',
                        'order_confirmed', 'order_shipped', 'order_cancelled', 'refund_completed', 'low_stock_alert')),
    recipient       TEXT NOT NULL,
    user_id         UUID,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT NOT NULL DEFAULT 0,
    claim_token     UUID,
    message_id      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    CONSTRAINT notification_deliveries_once UNIQUE (event_id, kind, recipient)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX notification_deliveries_status ON notification_deliveries (status, id);
CREATE INDEX notification_deliveries_recipient ON notification_deliveries (lower(recipient), id);
