-- SQLite flavour of ../postgres/0001_ordering.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339 TEXT
-- (whole seconds, so text order is time order), booleans as 0/1.
-- Ordering owns these tables; no other context reads them.

-- Per-database counters: 'order_number' and 'invoice:<year>'. Incremented inside the transaction
-- that uses the value, so a rollback leaves no gap.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

CREATE TABLE orders (
    id                     BLOB PRIMARY KEY,
    number                 TEXT NOT NULL UNIQUE,
    user_id                BLOB NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('pending', 'awaiting_payment', 'paid', 'confirmed', 'shipped',
                                                          'delivered', 'cancelled', 'payment_failed', 'refunded',
                                                          'partially_refunded')),
    currency               TEXT NOT NULL,
    subtotal               INTEGER NOT NULL CHECK (subtotal >= 0),
    discount               INTEGER NOT NULL CHECK (discount >= 0),
    shipping               INTEGER NOT NULL CHECK (shipping >= 0),
    tax                    INTEGER NOT NULL CHECK (tax >= 0),
    tax_rate_bp            INTEGER NOT NULL,
    total                  INTEGER NOT NULL CHECK (total >= 0),
    refunded               INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= total),
    shipping_method        TEXT NOT NULL,
    shipping_address       TEXT NOT NULL,
    coupon_code            TEXT,
    from_cart              INTEGER NOT NULL,
    payment_method         TEXT NOT NULL,
    payment_attempted      INTEGER NOT NULL DEFAULT 0,
    payment_id             TEXT,
    payment_brand          TEXT,
    payment_last4          TEXT,
    payment_status         TEXT,
    reservation_id         BLOB,
    reservation_expires_at TEXT,
    reservation_committed  INTEGER NOT NULL DEFAULT 0,
    invoice_number         TEXT UNIQUE,
    paid_at                TEXT,
    carrier                TEXT,
    tracking_number        TEXT,
    cancel_reason          TEXT,
    saga_step              TEXT CHECK (saga_step IN ('capture', 'commit', 'refund', 'release', 'restock')),
    saga_lease_owner       BLOB,
    saga_lease_until       TEXT,
    saga_attempts          INTEGER NOT NULL DEFAULT 0,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    version                INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX orders_user ON orders (user_id, id);
CREATE INDEX orders_status ON orders (status, id);
CREATE INDEX orders_saga ON orders (saga_lease_until) WHERE saga_step IS NOT NULL;
CREATE INDEX orders_reservation ON orders (reservation_id);

CREATE TABLE order_lines (
    order_id   BLOB NOT NULL REFERENCES orders (id),
    line       INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    product_id BLOB NOT NULL,
    name       TEXT NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    unit_price INTEGER NOT NULL CHECK (unit_price >= 0),
    line_total INTEGER NOT NULL CHECK (line_total >= 0),
    PRIMARY KEY (order_id, line)
);

-- Every transition, with time, actor and reason; notes (refund requests) have from = to.
CREATE TABLE order_timeline (
    id          BLOB PRIMARY KEY,
    order_id    BLOB NOT NULL REFERENCES orders (id),
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, id);

-- Checkout idempotency: one order per (user, Idempotency-Key). The claim is written before
-- anything else happens and names the order id the request will create.
CREATE TABLE order_claims (
    user_id      BLOB NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    order_id     BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);

-- Refunds issued by admins, one per (order, Idempotency-Key).
CREATE TABLE order_refunds (
    id          BLOB PRIMARY KEY,
    order_id    BLOB NOT NULL REFERENCES orders (id),
    idem_key    TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    reason      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'completed')),
    refund_id   TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (order_id, idem_key)
);

CREATE TABLE coupons (
    code         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('percentage', 'fixed')),
    -- basis points for percentage, minor units for fixed
    value        INTEGER NOT NULL CHECK (value > 0),
    currency     TEXT,
    valid_from   TEXT,
    valid_until  TEXT,
    max_uses     INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0,
    min_subtotal INTEGER,
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    CHECK (max_uses IS NULL OR uses <= max_uses)
);
