-- "Customers who bought this also bought": a read model fed by ordering's confirmed orders. One
-- row per ordered pair of products bought in one order, in both directions. `weight` sums each
-- order's recency weight (2^(days since 2026-01-01 / 90)): newer orders count more, and nothing
-- has to be decayed in place, since only the order of weights matters.
CREATE TABLE co_purchases (
    product_id UUID NOT NULL,
    other_id   UUID NOT NULL,
    weight     DOUBLE PRECISION NOT NULL,
    orders     BIGINT NOT NULL,
    last_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (product_id, other_id)
);
-- A product's partners heaviest first: reads walk this and stop at the first in-stock ones.
CREATE INDEX co_purchases_by_weight ON co_purchases (product_id, weight DESC);
-- Orders already counted: events arrive at least once, an order counts once.
CREATE TABLE co_purchase_orders (
    order_id   UUID PRIMARY KEY,
    counted_at TIMESTAMPTZ NOT NULL
);
