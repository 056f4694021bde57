-- +goose Up

-- Deletions stay provable (docs/api.md, "Integrity log"): a leaf whose
-- event was deleted by audex names what deleted it, the purge (whose
-- audit.purge_completed lists the leaves) or the audit.event_deleted event.
-- A leaf whose event is gone and that names nothing was deleted behind
-- audex's back.
ALTER TABLE log_leaves ADD COLUMN deleted_by text COLLATE "C";
CREATE INDEX log_leaves_deleted_by_idx ON log_leaves (tenant_id, deleted_by, leaf_index) WHERE deleted_by IS NOT NULL;

-- +goose Down
DROP INDEX log_leaves_deleted_by_idx;
ALTER TABLE log_leaves DROP COLUMN deleted_by;
