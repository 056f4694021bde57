-- +goose Up

-- One GIN index finds a day's events of an action, an actor type, a target
-- type or a request id, in place of four B-tree indexes (tenant_id,
-- column, occurred_at, id). An event's keys are its values of those four
-- columns, each a text that names the column, the event's UTC day and the
-- tenant, so that no tenant's keys match another's and a list reads a
-- value's events a few days at a time, newest first, rather than all of
-- them to sort (internal/store/list_keys.go). The index costs ingest
-- about what two of the B-trees it replaces did: the four cost 2.2-2.6 s
-- per 200,000 events, the index 1.0-1.4 s (BENCHMARKS.md, "An index
-- design for ingest").

-- audex_event_day is the UTC day of t, counted from 1970-01-01.
-- +goose StatementBegin
CREATE FUNCTION audex_event_day(t timestamptz) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT timezone('UTC', t)::date - DATE '1970-01-01' $$;
-- +goose StatementEnd

-- audex_event_key is the key of value in column kind ('a' action, 'y'
-- actor type, 'z' target type, 'r' request id) of a tenant's events of
-- a day. The day and the tenant id's length end at a colon, so no two
-- (day, tenant, value) give the same key.
-- +goose StatementBegin
CREATE FUNCTION audex_event_key(tenant_id text, day integer, kind text, value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT kind || day::text || ':' || length(tenant_id)::text || ':' || tenant_id || value $$;
-- +goose StatementEnd

-- audex_event_keys is an event's keys (a NULL column gives a NULL key,
-- which no filter asks for).
-- +goose StatementBegin
CREATE FUNCTION audex_event_keys(tenant_id text, occurred_at timestamptz, action text, actor_type text, target_type text, request_id text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ARRAY[audex_event_key(tenant_id, audex_event_day(occurred_at), 'a', action),
    audex_event_key(tenant_id, audex_event_day(occurred_at), 'y', actor_type),
    audex_event_key(tenant_id, audex_event_day(occurred_at), 'z', target_type),
    audex_event_key(tenant_id, audex_event_day(occurred_at), 'r', request_id)] $$;
-- +goose StatementEnd

-- New keys wait in the index's pending list until it holds 256 kB, then
-- are merged into the index in bulk; every read of the index scans the
-- list for each key it asks for, so the list is kept short (at the
-- default 4 MB, a read of 400 keys took 300 ms instead of 3).
CREATE INDEX events_keys_idx ON events USING gin (audex_event_keys(tenant_id, occurred_at, action, actor_type, target_type, request_id))
    WITH (gin_pending_list_limit = 256);
DROP INDEX events_action_idx;
DROP INDEX events_actor_type_idx;
DROP INDEX events_target_type_idx;
DROP INDEX events_request_idx;

-- +goose Down
CREATE INDEX events_action_idx      ON events (tenant_id, action, occurred_at, id);
CREATE INDEX events_actor_type_idx  ON events (tenant_id, actor_type, occurred_at, id);
CREATE INDEX events_target_type_idx ON events (tenant_id, target_type, occurred_at, id);
CREATE INDEX events_request_idx     ON events (tenant_id, request_id);
DROP INDEX events_keys_idx;
DROP FUNCTION audex_event_keys(text, timestamptz, text, text, text, text);
DROP FUNCTION audex_event_key(text, integer, text, text);
DROP FUNCTION audex_event_day(timestamptz);
