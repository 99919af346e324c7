-- SQLite flavour of ../postgres/0002_deliveries_of_any_kind.sql. SQLite cannot drop a CHECK
-- constraint, so the table is rebuilt without it (same columns, constraints and indexes).
CREATE TABLE notification_deliveries_new (
    id              BLOB PRIMARY KEY,
    event_id        BLOB NOT NULL,
    event_type      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    user_id         BLOB,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER NOT NULL DEFAULT 0,
    claim_token     BLOB,
    message_id      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    sent_at         TEXT,
    CONSTRAINT notification_deliveries_once UNIQUE (event_id, kind, recipient)
);
INSERT INTO notification_deliveries_new SELECT
    id, event_id, event_type, kind, recipient, user_id, subject, text_body, html_body, status,
    attempts, last_error, next_attempt_at, lease_until, claim_token, message_id, created_at,
    updated_at, sent_at
FROM notification_deliveries;
DROP TABLE notification_deliveries;
ALTER TABLE notification_deliveries_new RENAME TO notification_deliveries;
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'failed');
CREATE INDEX notification_deliveries_status ON notification_deliveries (status, id);
CREATE INDEX notification_deliveries_recipient ON notification_deliveries (lower(recipient), id);
