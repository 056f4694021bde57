-- +goose Up

-- How many stored events of a tenant carry each action, actor type and
-- target type: the values that GET /v1/audit/filters offers, without
-- scanning events. Ingest adds to it and deletions and purges subtract, in
-- the transaction that changes the events, so it stays exact. Rows at 0
-- stay (and are not shown) until a purge tidies them.
CREATE TABLE event_values (
    tenant_id text COLLATE "C" NOT NULL,
    kind      text COLLATE "C" NOT NULL CHECK (kind IN ('action', 'actor_type', 'target_type')),
    value     text COLLATE "C" NOT NULL,
    events    bigint NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);

-- +goose Down
DROP TABLE event_values;
