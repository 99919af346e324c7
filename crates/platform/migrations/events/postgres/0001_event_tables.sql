-- Events a context committed and its relay has not yet seen confirmed by the bus.
CREATE TABLE event_outbox (
    id           UUID PRIMARY KEY,          -- the event id (UUIDv7: ordered by creation)
    event_type   TEXT NOT NULL,
    envelope     TEXT NOT NULL,             -- the JSON envelope, exactly as published
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT
);
CREATE INDEX event_outbox_pending ON event_outbox (id) WHERE published_at IS NULL;
CREATE INDEX event_outbox_published ON event_outbox (published_at) WHERE published_at IS NOT NULL;

-- Events a consumer has handled: a redelivered id is acknowledged without running the handler.
CREATE TABLE event_inbox (
    consumer   TEXT NOT NULL,
    event_id   UUID NOT NULL,
    handled_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

-- Deliveries a consumer gave up on after its retries; admins list and replay them.
CREATE TABLE event_dead_letters (
    id          UUID PRIMARY KEY,
    consumer    TEXT NOT NULL,
    event_id    UUID,                       -- NULL when the payload was not an event at all
    event_type  TEXT,
    payload     TEXT NOT NULL,
    error       TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    failed_at   TIMESTAMPTZ NOT NULL,
    replayed_at TIMESTAMPTZ
);
CREATE INDEX event_dead_letters_open ON event_dead_letters (consumer, id) WHERE replayed_at IS NULL;
