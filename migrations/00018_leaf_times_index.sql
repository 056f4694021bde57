-- +goose Up

-- The leaves of a range of times (an export's or stream batch's records
-- selected by time alone, found from the log: LeavesOfTimes,
-- leavesByTime) are read by their time. Without this index, an export of
-- one minute read through every leaf of its tenant: 0.6-0.7 s at
-- 1,000,000 leaves, 1 ms with it (BENCHMARKS.md). Building it holds the
-- seals back for about 0.6 s per 1,000,000 leaves of the whole log.
CREATE INDEX log_leaves_time_idx ON log_leaves (tenant_id, occurred_at);

-- +goose Down

DROP INDEX log_leaves_time_idx;
