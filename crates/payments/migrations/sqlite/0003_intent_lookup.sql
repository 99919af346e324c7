-- SQLite flavour of ../postgres/0003_intent_lookup.sql.
-- Provider events about charges (`charge.refunded`) name the provider's intent, not our payment:
-- find the payment by it.
CREATE INDEX payments_by_provider_intent ON payments (provider_intent) WHERE provider_intent IS NOT NULL;
