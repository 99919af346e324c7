-- One mail of a kind per event and user, whatever address the user has by the time the event is
-- handled: a late duplicate of an order event, arriving after the customer changed their address,
-- must not mail them again at the new one. With this, the delivery insert itself deduplicates
-- order mails and the consumer skips its inbox for them. Rows without a user (alerts, mail to a
-- bare address) stay unique per address (notification_deliveries_once); NULLs never collide.
CREATE UNIQUE INDEX IF NOT EXISTS notification_deliveries_once_per_user
    ON notification_deliveries (event_id, kind, user_id);
