-- SQLite flavour of ../postgres/0003_co_purchases.sql: the co-purchase read model behind
-- "customers who bought this also bought", fed by ordering's confirmed orders. Weights sum each
-- order's recency weight (2^(days since 2026-01-01 / 90)); only their order matters.
CREATE TABLE co_purchases (
    product_id BLOB NOT NULL,
    other_id   BLOB NOT NULL,
    weight     REAL NOT NULL,
    orders     INTEGER NOT NULL,
    last_at    TEXT NOT NULL,
    PRIMARY KEY (product_id, other_id)
);
-- A product's partners heaviest first: reads walk this and stop at the first in-stock ones.
CREATE INDEX co_purchases_by_weight ON co_purchases (product_id, weight DESC);
-- Orders already counted: events arrive at least once, an order counts once.
CREATE TABLE co_purchase_orders (
    order_id   BLOB PRIMARY KEY,
    counted_at TEXT NOT NULL
);
