-- Payments owns these tables; no other context reads them. Card numbers and CVCs are never
-- stored anywhere: a method keeps the brand, the last four digits, the expiry and the provider's token.

CREATE TABLE payment_methods (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL,
    brand          TEXT NOT NULL,
    last4          TEXT NOT NULL CHECK (length(last4) = 4),
    exp_month      BIGINT NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year       BIGINT NOT NULL,
    provider       TEXT NOT NULL,
    provider_token TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_methods_user ON payment_methods (user_id, id);

CREATE TABLE payments (
    id              UUID PRIMARY KEY,
    order_id        UUID NOT NULL,
    customer_id     UUID NOT NULL,
    method_id       UUID NOT NULL REFERENCES payment_methods (id),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    capture         BOOLEAN NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('processing', 'authorized', 'captured', 'declined', 'failed')),
    brand           TEXT NOT NULL,
    last4           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    provider_intent TEXT,
    decline_code    TEXT,
    failure_reason  TEXT,
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX payments_order ON payments (order_id, id);
CREATE INDEX payments_status ON payments (status, updated_at);
-- At most one live (in flight, authorized or captured) payment per order: a second charge for a
-- paid order cannot even be recorded.
CREATE UNIQUE INDEX payments_one_live_per_order ON payments (order_id)
    WHERE status IN ('processing', 'authorized', 'captured');

CREATE TABLE refunds (
    id             UUID PRIMARY KEY,
    payment_id     UUID NOT NULL REFERENCES payments (id),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    reason         TEXT,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    provider_ref   TEXT,
    failure_reason TEXT,
    created_by     UUID NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX refunds_payment ON refunds (payment_id, id);
CREATE INDEX refunds_status ON refunds (status, updated_at);

-- Append-only money movements; captured and refunded amounts are sums over these rows.
CREATE TABLE payment_ledger (
    id           UUID PRIMARY KEY,
    payment_id   UUID NOT NULL REFERENCES payments (id),
    kind         TEXT NOT NULL CHECK (kind IN ('authorization', 'capture', 'refund')),
    amount       BIGINT NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL,
    refund_id    UUID,
    provider_ref TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX payment_ledger_payment ON payment_ledger (payment_id, kind);

-- Which resource a caller's Idempotency-Key created, and a digest of the request that did.
CREATE TABLE idempotency_keys (
    owner        UUID NOT NULL,
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    resource_id  UUID NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Provider webhook events already applied (replays are acknowledged and ignored).
CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- The simulated provider's own books (what a real provider keeps on its side).
CREATE TABLE sim_intents (
    id           TEXT PRIMARY KEY,
    idem_key     TEXT NOT NULL UNIQUE,
    amount       BIGINT NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL,
    decline_code TEXT,
    captured     BIGINT NOT NULL DEFAULT 0,
    refunded     BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    CHECK (refunded <= captured AND captured <= amount)
);

CREATE TABLE sim_operations (
    idem_key   TEXT PRIMARY KEY,
    intent_id  TEXT NOT NULL REFERENCES sim_intents (id),
    kind       TEXT NOT NULL,
    amount     BIGINT NOT NULL,
    result_id  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
