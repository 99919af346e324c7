-- Catalog owns these tables; no other context reads them. See ../sqlite/0001_catalog.sql for the
-- embedded flavour. JSON documents are kept as TEXT so both backends read them the same way.
CREATE TABLE categories (
    id          UUID PRIMARY KEY,
    parent_id   UUID REFERENCES categories (id),
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX categories_slug_key ON categories (slug);
CREATE INDEX categories_parent ON categories (parent_id);

CREATE TABLE products (
    id                UUID PRIMARY KEY,
    sku               TEXT NOT NULL,
    name              TEXT NOT NULL,
    slug              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
    price_amount      BIGINT NOT NULL CHECK (price_amount > 0),
    currency          TEXT NOT NULL,
    compare_at_amount BIGINT,
    brand             TEXT,
    category_id       UUID REFERENCES categories (id),
    attributes        TEXT NOT NULL DEFAULT '{}',
    attribute_text    TEXT NOT NULL DEFAULT '',
    images            TEXT NOT NULL DEFAULT '[]',
    rating_count      BIGINT NOT NULL DEFAULT 0,
    rating_score      BIGINT NOT NULL DEFAULT 0,
    rating_1          BIGINT NOT NULL DEFAULT 0,
    rating_2          BIGINT NOT NULL DEFAULT 0,
    rating_3          BIGINT NOT NULL DEFAULT 0,
    rating_4          BIGINT NOT NULL DEFAULT 0,
    rating_5          BIGINT NOT NULL DEFAULT 0,
    available         BIGINT NOT NULL DEFAULT 0,
    stock_event_id    UUID,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    deleted_at        TIMESTAMPTZ,
    version           BIGINT NOT NULL DEFAULT 1,
    -- Weighted document for full-text search: name A, brand B, attributes C, description D.
    search            TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, name), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(brand, '')), 'B')
        || setweight(to_tsvector('simple'::regconfig, attribute_text), 'C')
        || setweight(to_tsvector('simple'::regconfig, description), 'D')
    ) STORED
);
-- SKUs and slugs are unique among live products; a deleted product frees them.
CREATE UNIQUE INDEX products_sku_key ON products (sku) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX products_slug_key ON products (slug) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_newest ON products (status, id) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_price ON products (status, price_amount, id) WHERE deleted_at IS NULL;
CREATE INDEX products_listing_rating ON products (status, rating_score, id) WHERE deleted_at IS NULL;
CREATE INDEX products_category ON products (category_id, status, price_amount) WHERE deleted_at IS NULL;
CREATE INDEX products_brand ON products (brand, status) WHERE deleted_at IS NULL;
CREATE INDEX products_search ON products USING GIN (search);

CREATE TABLE product_attributes (
    product_id UUID NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (product_id, key)
);
CREATE INDEX product_attributes_kv ON product_attributes (key, value, product_id);

CREATE TABLE reviews (
    id                UUID PRIMARY KEY,
    product_id        UUID NOT NULL REFERENCES products (id),
    user_id           UUID NOT NULL,
    rating            BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title             TEXT NOT NULL,
    body              TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('visible', 'hidden')),
    verified_purchase BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX reviews_product_user_key ON reviews (product_id, user_id);
CREATE INDEX reviews_product ON reviews (product_id, id);
