-- A review whose author erased their account stays (its rating counts) but is no longer linked
-- to them: its user id is replaced by a random one and the storefront says "a former customer".
ALTER TABLE reviews ADD COLUMN author_erased BOOLEAN NOT NULL DEFAULT FALSE;
