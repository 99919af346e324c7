-- SQLite flavour of ../postgres/0001_payments.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339
-- TEXT (whole seconds, so text order is time order), booleans as 0/1.
-- Payments owns these tables; no other context reads them. Card numbers and CVCs are never
-- stored anywhere: a method keeps the brand, the last four digits, the expiry and the provider's token.

CREATE TABLE payment_methods (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL,
    brand          TEXT NOT NULL,
    last4          TEXT NOT NULL CHECK (length(last4) = 4),
    exp_month      INTEGER NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year       INTEGER NOT NULL,
    provider       TEXT NOT NULL,
    provider_token TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE INDEX payment_methods_user ON payment_methods (user_id, id);

CREATE TABLE payments (
    id              BLOB PRIMARY KEY,
    order_id        BLOB NOT NULL,
    customer_id     BLOB NOT NULL,
    method_id       BLOB NOT NULL REFERENCES payment_methods (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    capture         INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('processing', 'authorized', 'captured', 'declined', 'failed')),
    brand           TEXT NOT NULL,
    last4           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_intent TEXT,
    decline_code    TEXT,
    failure_reason  TEXT,
    created_by      BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX payments_order ON payments (order_id, id);
CREATE INDEX payments_status ON payments (status, updated_at);
-- At most one live (in flight, authorized or captured) payment per order: a second charge for a
-- paid order cannot even be recorded.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status IN ('processing', 'authorized', 'captured');

CREATE TABLE refunds (
    id             BLOB PRIMARY KEY,
    payment_id     BLOB NOT NULL REFERENCES payments (id),
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    reason         TEXT,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    provider_ref   TEXT,
    failure_reason TEXT,
    created_by     BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);
CREATE INDEX refunds_status ON refunds (status, updated_at);

-- Append-only money movements; captured and refunded amounts are sums over these rows.
CREATE TABLE payment_ledger (
    id           BLOB PRIMARY KEY,
    payment_id   BLOB NOT NULL REFERENCES payments (id),
    kind         TEXT NOT NULL CHECK (kind IN ('authorization', 'capture', 'refund')),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL,
    refund_id    BLOB,
    provider_ref TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX payment_ledger_payment ON payment_ledger (payment_id, kind);

-- Which resource a caller's Idempotency-Key created, and a digest of the request that did.
CREATE TABLE idempotency_keys (
    owner        BLOB NOT NULL,
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    resource_id  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (owner, scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Provider webhook events already applied (replays are acknowledged and ignored).
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- The simulated provider's own books (what a real provider keeps on its side).
CREATE TABLE sim_intents (
    id           TEXT PRIMARY KEY,
    idem_key     TEXT NOT NULL UNIQUE,
    amount       INTEGER NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    decline_code TEXT,
    captured     INTEGER NOT NULL DEFAULT 0,
    refunded     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    CHECK (refunded <= captured AND captured <= amount)
);

CREATE TABLE sim_operations (
    idem_key   TEXT PRIMARY KEY,
    intent_id  TEXT NOT NULL REFERENCES sim_intents (id),
    kind       TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    result_id  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
