-- +goose Up

-- Export jobs. The row is the job's state and manifest; River's job row
-- only carries the id (River deletes finished jobs after a day).
CREATE TABLE exports (
    id                 text COLLATE "C" PRIMARY KEY,
    tenant_id          text COLLATE "C" NOT NULL,
    status             text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    format             text NOT NULL CHECK (format IN ('jsonl', 'csv')),
    compression        text NOT NULL CHECK (compression IN ('none', 'gzip')),
    since              timestamptz NOT NULL,
    until              timestamptz NOT NULL,
    filters            jsonb NOT NULL,
    destination_name   text NOT NULL,
    destination_type   text NOT NULL,
    destination_bucket text NOT NULL,
    destination_prefix text NOT NULL, -- the destination's prefix joined with the request's
    key_prefix         text NOT NULL, -- where the objects go: <destination prefix>/<prefix>/<id>/
    part_max_records   integer NOT NULL,
    part_max_bytes     bigint NOT NULL,
    as_of              timestamptz NOT NULL,
    estimated_records  bigint NOT NULL,
    -- Checkpoint: the last exported (occurred_at, id); the next part starts after it.
    last_occurred_at   timestamptz,
    last_id            text COLLATE "C",
    records_exported   bigint NOT NULL DEFAULT 0,
    parts_written      integer NOT NULL DEFAULT 0,
    manifest_key       text,
    attempts           integer NOT NULL DEFAULT 0,
    -- The attempt working the export holds a lease, so that two attempts
    -- (a rescued job and a slow original) never work it at once.
    lease_owner        text,
    lease_until        timestamptz,
    error_code         text,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz
);
CREATE INDEX exports_tenant_idx ON exports (tenant_id, created_at DESC, id DESC);

-- The parts an export has uploaded, each recorded in the transaction that
-- moves the checkpoint past its events.
CREATE TABLE export_parts (
    export_id   text COLLATE "C" NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    part_number integer NOT NULL,
    key         text NOT NULL,
    size_bytes  bigint NOT NULL,
    records     bigint NOT NULL,
    sha256      text NOT NULL,
    PRIMARY KEY (export_id, part_number)
);

-- +goose Down
DROP TABLE export_parts;
DROP TABLE exports;
