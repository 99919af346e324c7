-- Who bought what (from ordering's delivered orders), so reviews can say "verified purchase".
CREATE TABLE verified_purchases (
    user_id    BLOB NOT NULL,
    product_id BLOB NOT NULL REFERENCES products (id),
    PRIMARY KEY (user_id, product_id)
);
