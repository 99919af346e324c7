-- Who bought what (from ordering's delivered orders), so reviews can say "verified purchase".
CREATE TABLE verified_purchases (
    user_id    UUID NOT NULL,
    product_id UUID NOT NULL REFERENCES products (id),
    PRIMARY KEY (user_id, product_id)
);
