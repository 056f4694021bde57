-- +goose Up

-- An export's estimated_records is a lower bound when the planner's
-- statistics predated the events: the worker counts them exactly before
-- the first part, so that the progress means something.
ALTER TABLE exports ADD COLUMN estimate_is_lower_bound boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE exports DROP COLUMN estimate_is_lower_bound;
