-- SQLite flavour of ../postgres/0002_card_choices.sql (booleans as 0/1, timestamps as RFC 3339 TEXT).
-- Saving a card is the shopper's choice, and saved cards can be removed.
-- `saved`: listed on the account for next time (cards saved before this migration were listed).
-- `removed_at`: no longer listed nor usable for new payments (removed by its owner, a declined
-- card on its first use, or a card not saved once its payment went through). Kept, not deleted:
-- past payments still name the method.
ALTER TABLE payment_methods ADD COLUMN saved INTEGER NOT NULL DEFAULT 1;
ALTER TABLE payment_methods ADD COLUMN removed_at TEXT;
