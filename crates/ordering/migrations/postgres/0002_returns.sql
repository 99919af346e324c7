-- Returns (RMA): a customer's request to send back some units of a delivered order, the staff's
-- decision, the receipt (per line: back to stock or not) and the refund. See docs/adr/0010-returns.md.

CREATE TABLE order_returns (
    id            UUID PRIMARY KEY,
    order_id      UUID NOT NULL REFERENCES orders (id),
    user_id       UUID NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'received', 'refunded')),
    reason        TEXT NOT NULL,
    note          TEXT,
    -- Fixed on receipt, in minor units of the order's currency.
    refund_amount BIGINT CHECK (refund_amount >= 0),
    refund_id     TEXT,
    -- The step after receipt still to run (persisted before it acts, so a crash resumes it).
    step          TEXT CHECK (step IN ('restock', 'refund')),
    lease_owner   UUID,
    lease_until   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX order_returns_order ON order_returns (order_id, id);
CREATE INDEX order_returns_status ON order_returns (status, id);
CREATE INDEX order_returns_step ON order_returns (lease_until) WHERE step IS NOT NULL;

CREATE TABLE order_return_lines (
    return_id  UUID NOT NULL REFERENCES order_returns (id),
    line       BIGINT NOT NULL,
    sku        TEXT NOT NULL,
    name       TEXT NOT NULL,
    quantity   BIGINT NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    -- NULL until received; then whether the units went back to stock.
    restock    BOOLEAN,
    PRIMARY KEY (return_id, line)
);
