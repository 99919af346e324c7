-- Cart owns these tables; no other context reads them.

-- A guest cart (identified by the SHA-256 of its token) or a user's cart (one per user).
-- `touched_at` is the last activity: the cart expires once it is older than the TTL of its kind.
CREATE TABLE carts (
    id         UUID PRIMARY KEY,
    user_id    UUID UNIQUE,
    token_hash BYTEA UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    touched_at TIMESTAMPTZ NOT NULL,
    version    BIGINT NOT NULL DEFAULT 1,
    CHECK ((user_id IS NULL) <> (token_hash IS NULL))
);
CREATE INDEX carts_guest_touched ON carts (touched_at) WHERE user_id IS NULL;
CREATE INDEX carts_user_touched ON carts (touched_at) WHERE user_id IS NOT NULL;

-- One line per SKU. The product snapshot (id, name, price) is what the shopper saw when the line
-- was last written; the view reads current prices from catalog and flags differences.
CREATE TABLE cart_items (
    cart_id        UUID NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
    sku            TEXT NOT NULL,
    -- Order of first addition (1, 2, ...): the view lists lines oldest first.
    position       BIGINT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    product_id     UUID NOT NULL,
    name           TEXT NOT NULL,
    added_price    BIGINT NOT NULL CHECK (added_price >= 0),
    added_currency TEXT NOT NULL,
    added_at       TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

-- Guest tokens already merged, so that merging the same token again is a no-op rather than a 404.
CREATE TABLE cart_merges (
    token_hash BYTEA PRIMARY KEY,
    user_id    UUID NOT NULL,
    merged_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX cart_merges_merged_at ON cart_merges (merged_at);
