-- SQLite flavour of ../postgres/0001_cart.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339
-- TEXT (whole seconds, so text order is time order).
-- Cart owns these tables; no other context reads them.

-- A guest cart (identified by the SHA-256 of its token) or a user's cart (one per user).
-- `touched_at` is the last activity: the cart expires once it is older than the TTL of its kind.
CREATE TABLE carts (
    id         BLOB PRIMARY KEY,
    user_id    BLOB UNIQUE,
    token_hash BLOB UNIQUE,
    created_at TEXT NOT NULL,
    touched_at TEXT NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    CHECK ((user_id IS NULL) <> (token_hash IS NULL))
);
CREATE INDEX carts_guest_touched ON carts (touched_at) WHERE user_id IS NULL;
CREATE INDEX carts_user_touched ON carts (touched_at) WHERE user_id IS NOT NULL;

-- One line per SKU. The product snapshot (id, name, price) is what the shopper saw when the line
-- was last written; the view reads current prices from catalog and flags differences.
CREATE TABLE cart_items (
    cart_id        BLOB NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    sku            TEXT NOT NULL,
    -- Order of first addition (1, 2, ...): the view lists lines oldest first.
    position       INTEGER NOT NULL,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    product_id     BLOB NOT NULL,
    name           TEXT NOT NULL,
    added_price    INTEGER NOT NULL CHECK (added_price >= 0),
    added_currency TEXT NOT NULL,
    added_at       TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

-- Guest tokens already merged, so that merging the same token again is a no-op rather than a 404.
CREATE TABLE cart_merges (
    token_hash BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL,
    merged_at  TEXT NOT NULL
);
CREATE INDEX cart_merges_merged_at ON cart_merges (merged_at);
