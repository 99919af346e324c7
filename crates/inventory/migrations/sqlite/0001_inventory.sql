-- SQLite flavour of ../postgres/0001_inventory.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339 TEXT
-- (whole seconds, so text order is time order), booleans as 0/1.
-- Inventory owns these tables; no other context reads them.

-- One row per SKU. available = on_hand - reserved is never stored, so it can never disagree.
CREATE TABLE stock (
    sku                 TEXT PRIMARY KEY,
    on_hand             INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved            INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    low_stock_threshold INTEGER NOT NULL CHECK (low_stock_threshold >= 0),
    discontinued        INTEGER NOT NULL DEFAULT 0,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    version             INTEGER NOT NULL DEFAULT 1,
    CHECK (reserved <= on_hand)
);

-- Every change to on_hand or reserved, append-only, newest first by id (UUIDv7).
CREATE TABLE stock_movements (
    id             BLOB PRIMARY KEY,
    sku            TEXT NOT NULL REFERENCES stock (sku),
    kind           TEXT NOT NULL CHECK (kind IN ('restock', 'damage', 'correction', 'reserve', 'release', 'commit', 'expire')),
    quantity       INTEGER NOT NULL,
    on_hand_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    on_hand_after  INTEGER NOT NULL,
    reserved_after INTEGER NOT NULL,
    reason         TEXT,
    reservation_id BLOB,
    actor_id       BLOB,
    occurred_at    TEXT NOT NULL
);
CREATE INDEX stock_movements_sku ON stock_movements (sku, id);

CREATE TABLE reservations (
    id         BLOB PRIMARY KEY,
    reference  TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'released', 'committed', 'expired')),
    expires_at TEXT NOT NULL,
    created_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX reservations_due ON reservations (state, expires_at);
CREATE INDEX reservations_reference ON reservations (reference);

CREATE TABLE reservation_items (
    reservation_id BLOB NOT NULL REFERENCES reservations (id),
    line           INTEGER NOT NULL,
    sku            TEXT NOT NULL REFERENCES stock (sku),
    qty            INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (reservation_id, sku)
);

-- The first successful answer to a reservation request, per caller and Idempotency-Key.
CREATE TABLE idempotency_keys (
    owner        BLOB NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
