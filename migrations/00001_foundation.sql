-- +goose Up

-- Tenants are created on first use (by `api keys create`). Every other row
-- carries tenant_id and every query filters on it.
CREATE TABLE tenants (
    id         text COLLATE "C" PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes of the plain key. Keys are 256-bit
-- random strings, so a fast hash is enough (as GitHub and Stripe do).
CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id),
    name         text NOT NULL DEFAULT '',
    scopes       text[] NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at);

-- Installation-wide settings such as the cursor-signing secret, written once
-- by `api migrate` so that every replica shares them.
CREATE TABLE settings (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

-- Events are range-partitioned by month of occurred_at. Text columns that
-- are filtered or ordered on use the "C" collation: byte order, so keyset
-- pagination agrees with Go's string order and prefix filters are index
-- ranges. See docs/design.md.
CREATE TABLE events (
    tenant_id   text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    action      text COLLATE "C" NOT NULL,
    actor_id    text COLLATE "C" NOT NULL,
    actor_type  text COLLATE "C",
    actor_name  text,
    target_id   text COLLATE "C",
    target_type text COLLATE "C",
    target_name text,
    resource    text COLLATE "C",
    source_ip   inet,
    user_agent  text,
    request_id  text COLLATE "C",
    method      text,
    path        text,
    status_code integer,
    success     boolean,
    duration_ms bigint,
    metadata    jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (occurred_at);

-- Prefix filters (action_prefix, resource_prefix) need finer histograms
-- than the default to estimate a narrow prefix: with the default, a
-- resource prefix matching 0.3% of ten million events was estimated at
-- 2.5% of that and planned as fetch-all-and-sort (BENCHMARKS.md). New
-- partitions get the same targets (audex_ensure_event_partition).
ALTER TABLE events ALTER COLUMN resource SET STATISTICS 1000;
ALTER TABLE events ALTER COLUMN action SET STATISTICS 1000;

-- Catches events far outside the months that have partitions (backfills,
-- clocks gone wrong). audex_ensure_event_partition moves its rows out when
-- their month gets a partition.
CREATE TABLE events_default PARTITION OF events DEFAULT;
ALTER TABLE events_default ALTER COLUMN resource SET STATISTICS 1000;
ALTER TABLE events_default ALTER COLUMN action SET STATISTICS 1000;

CREATE INDEX events_time_idx        ON events (tenant_id, occurred_at, id);
CREATE INDEX events_actor_idx       ON events (tenant_id, actor_id, occurred_at, id);
CREATE INDEX events_target_idx      ON events (tenant_id, target_id, occurred_at, id);
CREATE INDEX events_action_idx      ON events (tenant_id, action, occurred_at, id);
CREATE INDEX events_actor_type_idx  ON events (tenant_id, actor_type, occurred_at, id);
CREATE INDEX events_target_type_idx ON events (tenant_id, target_type, occurred_at, id);
CREATE INDEX events_resource_idx    ON events (tenant_id, resource, occurred_at, id);
CREATE INDEX events_request_idx     ON events (tenant_id, request_id);
CREATE INDEX events_source_ip_idx   ON events (tenant_id, source_ip, occurred_at, id);

-- One row per stored event: the dedupe of client-given ids and the way from
-- an id to its partition, without probing every partition. Unpartitioned on
-- purpose: a unique index on a partitioned table must contain the partition
-- key, which an id lookup does not know.
CREATE TABLE event_ids (
    tenant_id   text COLLATE "C" NOT NULL,
    id          text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Creates the partition of events for the UTC month that holds month_start,
-- moving any rows of that month out of events_default first. Returns false
-- when the partition already exists. Safe to call concurrently.
-- +goose StatementBegin
CREATE FUNCTION audex_ensure_event_partition(month_start timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    name text := 'events_' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audex_ensure_event_partition'));
    IF to_regclass(name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
    EXECUTE format('ALTER TABLE %I ALTER COLUMN resource SET STATISTICS 1000, ALTER COLUMN action SET STATISTICS 1000', name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM events_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *) '
        'INSERT INTO %I SELECT * FROM moved', lo, hi, name);
    EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
    RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION audex_ensure_event_partition(timestamptz);
DROP TABLE event_ids;
DROP TABLE events;
DROP TABLE settings;
DROP TABLE api_keys;
DROP TABLE tenants;
