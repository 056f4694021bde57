-- +goose Up

-- Each leaf keeps its event's occurred_at, written by the seal: the
-- records of an export or stream batch that selects by time alone are
-- found from the log's leaves, checked against the events by a count and
-- sums of hashes of their ids, without joining the two (docs/design.md,
-- "The integrity log"). Leaves sealed before this migration have none;
-- their records are found by the join, as before.
ALTER TABLE log_leaves ADD COLUMN occurred_at timestamptz;

-- +goose Down

ALTER TABLE log_leaves DROP COLUMN occurred_at;
