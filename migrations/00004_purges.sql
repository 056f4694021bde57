-- +goose Up

-- Per-tenant retention: events older than retain_days are purged by the
-- scheduled retention job. NULL keeps events forever (the default).
ALTER TABLE tenants ADD COLUMN retain_days integer CHECK (retain_days BETWEEN 1 AND 36500);

-- Purges, requested (POST /purge) or scheduled (retention). The row holds
-- the progress, so that a purge that dies resumes with the right count.
CREATE TABLE purges (
    id            text COLLATE "C" PRIMARY KEY,
    tenant_id     text COLLATE "C" NOT NULL,
    status        text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    reason        text NOT NULL CHECK (reason IN ('request', 'retention')),
    before        timestamptz NOT NULL,
    -- The UTC day of a retention purge: one per tenant and day, however
    -- many worker processes run the schedule.
    retention_day date,
    deleted       bigint NOT NULL DEFAULT 0,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    UNIQUE (tenant_id, retention_day)
);
CREATE INDEX purges_tenant_idx ON purges (tenant_id, created_at DESC);

-- +goose Down
DROP TABLE purges;
ALTER TABLE tenants DROP COLUMN retain_days;
