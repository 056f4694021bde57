-- +goose Up

-- Export jobs write Parquet parts too.
ALTER TABLE exports DROP CONSTRAINT exports_format_check;
ALTER TABLE exports ADD CONSTRAINT exports_format_check CHECK (format IN ('jsonl', 'csv', 'parquet'));

-- +goose Down
ALTER TABLE exports DROP CONSTRAINT exports_format_check;
ALTER TABLE exports ADD CONSTRAINT exports_format_check CHECK (format IN ('jsonl', 'csv'));
