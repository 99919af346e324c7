-- SQLite flavour of ../postgres/0001_catalog.sql: UUIDs as 16-byte BLOBs, UTC timestamps as RFC 3339 TEXT,
-- JSON documents as TEXT. Catalog owns these tables; no other context reads them.
CREATE TABLE categories (
    id          BLOB PRIMARY KEY,
    parent_id   BLOB REFERENCES categories (id),
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX categories_slug_key ON categories (slug);
CREATE INDEX categories_parent ON categories (parent_id);

-- `seq` is the stable rowid the full-text index refers to (a BLOB primary key would leave the
-- implicit rowid free to change on VACUUM).
CREATE TABLE products (
    seq               INTEGER PRIMARY KEY,
    id                BLOB NOT NULL UNIQUE,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    slug              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
    price_amount      INTEGER NOT NULL CHECK (price_amount > 0),
    currency          TEXT NOT NULL,
    compare_at_amount INTEGER,
    brand             TEXT,
    category_id       BLOB REFERENCES categories (id),
    attributes        TEXT NOT NULL DEFAULT '{}',
    attribute_text    TEXT NOT NULL DEFAULT '',
    images            TEXT NOT NULL DEFAULT '[]',
    rating_count      INTEGER NOT NULL DEFAULT 0,
    rating_score      INTEGER NOT NULL DEFAULT 0,
    rating_1          INTEGER NOT NULL DEFAULT 0,
    rating_2          INTEGER NOT NULL DEFAULT 0,
    rating_3          INTEGER NOT NULL DEFAULT 0,
    rating_4          INTEGER NOT NULL DEFAULT 0,
    rating_5          INTEGER NOT NULL DEFAULT 0,
    available         INTEGER NOT NULL DEFAULT 0,
    stock_event_id    BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT,
    version           INTEGER NOT NULL DEFAULT 1
);
-- SKUs and slugs are unique among live products; a deleted product frees them.
CREATE UNIQUE INDEX products_sku_key ON products (sku) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_slug_key ON products (slug) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_newest ON products (status, id) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_price ON products (status, price_amount, id) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_rating ON products (status, rating_score, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category ON products (category_id, status, price_amount) WHERE deleted_at IS NULL;
CREATE INDEX products_brand ON products (brand, status) WHERE deleted_at IS NULL;

-- One row per attribute, for `attr=key:value` filters and related products.
CREATE TABLE product_attributes (
    product_id BLOB NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (product_id, key)
);
CREATE INDEX product_attributes_kv ON product_attributes (key, value, product_id);

-- Full-text index over name, description, brand and attribute values, kept in sync by triggers.
CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, description, brand, attribute_text,
    content = 'products', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
);
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description, brand, attribute_text)
    VALUES (new.seq, new.name, new.description, coalesce(new.brand, ''), new.attribute_text);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, brand, attribute_text)
    VALUES ('delete', old.seq, old.name, old.description, coalesce(old.brand, ''), old.attribute_text);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description, brand, attribute_text ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description, brand, attribute_text)
    VALUES ('delete', old.seq, old.name, old.description, coalesce(old.brand, ''), old.attribute_text);
    INSERT INTO products_fts (rowid, name, description, brand, attribute_text)
    VALUES (new.seq, new.name, new.description, coalesce(new.brand, ''), new.attribute_text);
END;

CREATE TABLE reviews (
    id                BLOB PRIMARY KEY,
    product_id        BLOB NOT NULL REFERENCES products (id),
    user_id           BLOB NOT NULL,
    rating            INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title             TEXT NOT NULL,
    body              TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('visible', 'hidden')),
    verified_purchase INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);
CREATE UNIQUE INDEX reviews_product_user_key ON reviews (product_id, user_id);
CREATE INDEX reviews_product ON reviews (product_id, id);
