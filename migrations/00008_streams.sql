-- +goose Up

-- Export streams: a tenant's matching events delivered continuously to a
-- destination as a chain of batches. The row is the stream's state; its
-- River job carries only the id.
CREATE TABLE streams (
    id                 text COLLATE "C" PRIMARY KEY,
    tenant_id          text COLLATE "C" NOT NULL,
    status             text NOT NULL CHECK (status IN ('active', 'paused', 'failed', 'deleted')),
    format             text NOT NULL CHECK (format IN ('jsonl', 'csv', 'parquet')),
    compression        text NOT NULL CHECK (compression IN ('none', 'gzip')),
    filters            jsonb NOT NULL,
    destination_name   text NOT NULL,
    destination_type   text NOT NULL,
    destination_bucket text NOT NULL,
    destination_prefix text NOT NULL, -- the destination's prefix joined with the request's
    key_prefix         text NOT NULL, -- where the objects go: <destination prefix>/<prefix>/<id>/
    interval_seconds   integer NOT NULL,
    start_at           timestamptz NOT NULL,
    -- Every matching event received before the watermark was delivered:
    -- the last batch's through, or start_at before the first batch.
    watermark          timestamptz NOT NULL,
    -- The batch being delivered, fixed before its first object is written
    -- so that every attempt writes the same events under the same keys.
    pending_through    timestamptz,
    next_seq           bigint NOT NULL DEFAULT 1,
    batches_delivered  bigint NOT NULL DEFAULT 0,
    events_delivered   bigint NOT NULL DEFAULT 0,
    last_batch_at      timestamptz,
    last_manifest_sha256 text,
    -- Deliveries that failed in a row (the retry backoff grows with them),
    -- and when the next may be tried.
    failures           integer NOT NULL DEFAULT 0,
    retry_at           timestamptz,
    -- The attempt delivering the stream holds a lease, renewed while it
    -- works; the scheduler claims an expired one for the job it inserts,
    -- so a dead worker's stream resumes once its lease runs out.
    lease_owner        text,
    lease_until        timestamptz,
    error_code         text,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_tenant_idx ON streams (tenant_id, created_at DESC, id DESC);
CREATE INDEX streams_active_idx ON streams (watermark) WHERE status = 'active';

-- Delivered batches, each recorded in the transaction that moves its
-- stream's watermark to its through.
CREATE TABLE stream_batches (
    stream_id       text COLLATE "C" NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    after           timestamptz NOT NULL,
    through         timestamptz NOT NULL,
    record_count    bigint NOT NULL,
    files           jsonb NOT NULL,
    manifest_key    text,
    manifest_sha256 text NOT NULL,
    previous_manifest_sha256 text,
    delivered_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_id, seq)
);

-- +goose Down
DROP TABLE stream_batches;
DROP TABLE streams;
