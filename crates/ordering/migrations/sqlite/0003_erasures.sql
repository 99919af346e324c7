-- SQLite flavour of ../postgres/0003_erasures.sql.
-- Customers who erased their account. Their orders keep name and address while the law requires
-- the shop to keep its invoices (EMPORIUM_ORDER_RETENTION_DAYS), then are pseudonymised.
CREATE TABLE privacy_erasures (
    user_id      BLOB PRIMARY KEY,
    requested_at TEXT NOT NULL,
    -- Set once no order of the user keeps personal data.
    completed_at TEXT
);
CREATE INDEX privacy_erasures_open ON privacy_erasures (requested_at) WHERE completed_at IS NULL;
