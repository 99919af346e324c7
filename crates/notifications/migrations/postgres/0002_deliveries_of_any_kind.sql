-- The kind of a delivery is checked by the code (notifications::domain::Kind); a CHECK list here
-- would need a migration for every new mail, and three mails were added at once.
ALTER TABLE notification_deliveries DROP CONSTRAINT IF EXISTS notification_deliveries_kind_check;
