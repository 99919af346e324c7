-- Erasures and exports of personal data across contexts (docs/privacy.md). Identity asks every
-- context holding personal data over the bus and records each answer here.

-- One row per erased account; complete once every context reported its step.
CREATE TABLE privacy_erasures (
    user_id      UUID PRIMARY KEY REFERENCES users (id),
    requested_at TIMESTAMPTZ NOT NULL,
    -- The account itself, or the administrator who erased it on request.
    requested_by UUID NOT NULL,
    completed_at TIMESTAMPTZ
);

CREATE TABLE privacy_erasure_steps (
    user_id      UUID NOT NULL REFERENCES privacy_erasures (user_id),
    context      TEXT NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    summary      TEXT NOT NULL,
    PRIMARY KEY (user_id, context)
);

CREATE TABLE privacy_exports (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id),
    requested_by UUID NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    ready_at     TIMESTAMPTZ,
    -- Set when ready: the archive is downloadable until then, and deleted after.
    expires_at   TIMESTAMPTZ
);
CREATE INDEX privacy_exports_user ON privacy_exports (user_id, id);
CREATE INDEX privacy_exports_expiry ON privacy_exports (expires_at) WHERE expires_at IS NOT NULL;

-- One JSON document per context (identity's own included); deleted with the export.
CREATE TABLE privacy_export_parts (
    export_id   UUID NOT NULL REFERENCES privacy_exports (id) ON DELETE CASCADE,
    context     TEXT NOT NULL,
    data        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (export_id, context)
);
