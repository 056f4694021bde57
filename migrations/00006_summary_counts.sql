-- +goose Up

-- Daily counts of a tenant's events, from which GET /v1/audit/summary
-- answers a plain time range without scanning events (docs/design.md,
-- "Summaries"). One row per (kind, value, UTC day of occurred_at): kind 0
-- counts all events (value ''), 1 the successful and 2 the failed ones
-- (value ''), 3 actions, 4 actors, 5 targets, 6 resources. Kept by the
-- summary_rollup job, not by ingest.
CREATE TABLE summary_counts (
    tenant_id text COLLATE "C" NOT NULL,
    kind      smallint NOT NULL,
    value     text COLLATE "C" NOT NULL,
    day       date NOT NULL,
    events    bigint NOT NULL,
    PRIMARY KEY (tenant_id, kind, value, day)
);
-- A day's values, most events first: the candidates of the top lists.
CREATE INDEX summary_counts_top_idx ON summary_counts (tenant_id, kind, day, events DESC, value);

-- How far summary_counts goes for a tenant: it holds exactly the events
-- received before rolled_to whose day is valid_from or later. Days before
-- valid_from (left behind by a purge) are read from events; their stale
-- rows are deleted by the rollup job.
CREATE TABLE summary_marks (
    tenant_id  text COLLATE "C" PRIMARY KEY,
    rolled_to  timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    valid_from date NOT NULL DEFAULT '0001-01-01'
);

-- The rollup finds the events received since its last run.
CREATE INDEX events_received_idx ON events (tenant_id, received_at);

-- +goose Down
DROP INDEX events_received_idx;
DROP TABLE summary_marks;
DROP TABLE summary_counts;
