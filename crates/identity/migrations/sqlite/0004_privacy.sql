-- SQLite flavour of ../postgres/0004_privacy.sql.
-- Erasures and exports of personal data across contexts (docs/privacy.md). Identity asks every
-- context holding personal data over the bus and records each answer here.

-- One row per erased account; complete once every context reported its step.
CREATE TABLE privacy_erasures (
    user_id      BLOB PRIMARY KEY REFERENCES users (id),
    requested_at TEXT NOT NULL,
    -- The account itself, or the administrator who erased it on request.
    requested_by BLOB NOT NULL,
    completed_at TEXT
);

CREATE TABLE privacy_erasure_steps (
    user_id      BLOB NOT NULL REFERENCES privacy_erasures (user_id),
    context      TEXT NOT NULL,
    completed_at TEXT NOT NULL,
    summary      TEXT NOT NULL,
    PRIMARY KEY (user_id, context)
);

CREATE TABLE privacy_exports (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id),
    requested_by BLOB NOT NULL,
    requested_at TEXT NOT NULL,
    ready_at     TEXT,
    -- Set when ready: the archive is downloadable until then, and deleted after.
    expires_at   TEXT
);
CREATE INDEX privacy_exports_user ON privacy_exports (user_id, id);
CREATE INDEX privacy_exports_expiry ON privacy_exports (expires_at) WHERE expires_at IS NOT NULL;

-- One JSON document per context (identity's own included); deleted with the export.
CREATE TABLE privacy_export_parts (
    export_id   BLOB NOT NULL REFERENCES privacy_exports (id) ON DELETE CASCADE,
    context     TEXT NOT NULL,
    data        TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (export_id, context)
);
