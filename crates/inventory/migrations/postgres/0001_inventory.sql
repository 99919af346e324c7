-- Inventory owns these tables; no other context reads them.

-- One row per SKU. available = on_hand - reserved is never stored, so it can never disagree.
CREATE TABLE stock (
    sku                 TEXT PRIMARY KEY,
    on_hand             BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved            BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    low_stock_threshold BIGINT NOT NULL CHECK (low_stock_threshold >= 0),
    discontinued        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    version             BIGINT NOT NULL DEFAULT 1,
    CHECK (reserved <= on_hand)
);

-- Every change to on_hand or reserved, append-only, newest first by id (UUIDv7).
CREATE TABLE stock_movements (
    id             UUID PRIMARY KEY,
    sku            TEXT NOT NULL REFERENCES stock (sku),
    kind           TEXT NOT NULL CHECK (kind IN ('restock', 'damage', 'correction', 'reserve', 'release', 'commit', 'expire')),
    quantity       BIGINT NOT NULL,
    on_hand_delta  BIGINT NOT NULL,
    reserved_delta BIGINT NOT NULL,
    on_hand_after  BIGINT NOT NULL,
    reserved_after BIGINT NOT NULL,
    reason         TEXT,
    reservation_id UUID,
    actor_id       UUID,
    occurred_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX stock_movements_sku ON stock_movements (sku, id);

CREATE TABLE reservations (
    id         UUID PRIMARY KEY,
    reference  TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'released', 'committed', 'expired')),
    expires_at TIMESTAMPTZ NOT NULL,
    created_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX reservations_due ON reservations (state, expires_at);
CREATE INDEX reservations_reference ON reservations (reference);

CREATE TABLE reservation_items (
    reservation_id UUID NOT NULL REFERENCES reservations (id),
    line           BIGINT NOT NULL,
    sku            TEXT NOT NULL REFERENCES stock (sku),
    qty            BIGINT NOT NULL CHECK (qty > 0),
    PRIMARY KEY (reservation_id, sku)
);

-- The first successful answer to a reservation request, per caller and Idempotency-Key.
CREATE TABLE idempotency_keys (
    owner        UUID NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       BIGINT NOT NULL,
    body         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
