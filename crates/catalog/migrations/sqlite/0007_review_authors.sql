-- SQLite flavour of ../postgres/0006_review_authors.sql (booleans as 0/1).
-- A review whose author erased their account stays (its rating counts) but is no longer linked
-- to them: its user id is replaced by a random one and the storefront says "a former customer".
ALTER TABLE reviews ADD COLUMN author_erased INTEGER NOT NULL DEFAULT 0;
