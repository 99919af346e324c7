-- SQLite flavour of ../postgres/0003_address_book.sql: a shopper's saved shipping addresses.
-- Checkout copies the chosen one into the order, so editing or removing an address here never
-- changes an order that was placed with it.
CREATE TABLE addresses (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id),
    label       TEXT,
    name        TEXT NOT NULL,
    line1       TEXT NOT NULL,
    line2       TEXT,
    city        TEXT NOT NULL,
    postal_code TEXT NOT NULL,
    country     TEXT NOT NULL,
    phone       TEXT,
    is_default  BOOLEAN NOT NULL CHECK (is_default IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX addresses_by_user ON addresses (user_id, created_at);
-- At most one default per shopper, whatever two requests do at once.
CREATE UNIQUE INDEX addresses_one_default_per_user ON addresses (user_id) WHERE is_default;
