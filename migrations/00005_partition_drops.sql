-- +goose Up

-- A retention purge that drops a whole monthly partition names it, so that
-- a drop interrupted after the detach can be finished.
ALTER TABLE purges ADD COLUMN partition_name text;

-- +goose Down
ALTER TABLE purges DROP COLUMN partition_name;
