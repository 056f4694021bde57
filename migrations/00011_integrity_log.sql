-- +goose Up

-- The integrity log (docs/design.md, "The integrity log"): every tenant's
-- events, in arrival order, are the leaves of an append-only Merkle tree
-- (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog's layout), committed to
-- by signed checkpoints.

-- One row per leaf. hashes holds the tree's stored hashes that this leaf
-- completes (tlog.StoredHashes: the leaf hash first, then the root of each
-- complete subtree that ends with it), 32 bytes each. A leaf outlives its
-- event: deleting an event removes its body, never its leaf.
CREATE TABLE log_leaves (
    tenant_id   text COLLATE "C" NOT NULL,
    leaf_index  bigint NOT NULL,
    event_id    text COLLATE "C" NOT NULL,
    hashes      bytea NOT NULL,
    PRIMARY KEY (tenant_id, leaf_index)
);
-- Not unique: a deleted event's id may be ingested again, a new leaf.
CREATE INDEX log_leaves_event_idx ON log_leaves (tenant_id, event_id, leaf_index);

-- How far a tenant's log goes: it holds exactly the tenant's events
-- received before sealed_to, tree_size of them.
CREATE TABLE log_state (
    tenant_id  text COLLATE "C" PRIMARY KEY,
    sealed_to  timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
    tree_size  bigint NOT NULL DEFAULT 0
);

-- The signed checkpoints of a tenant's log, one per tree size that was
-- sealed: note is the C2SP signed note (origin, size, base64 root hash,
-- a blank line, the signature lines).
CREATE TABLE log_checkpoints (
    tenant_id  text COLLATE "C" NOT NULL,
    tree_size  bigint NOT NULL,
    root_hash  bytea NOT NULL,
    note       text NOT NULL,
    signed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, tree_size)
);

-- +goose Down
DROP TABLE log_checkpoints;
DROP TABLE log_state;
DROP TABLE log_leaves;
