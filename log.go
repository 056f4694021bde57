package audex

import (
	"encoding/json"

	"golang.org/x/mod/sumdb/tlog"
)

// InclusionProof is an event's RFC 6962 inclusion proof in its tenant's
// integrity log against the checkpoint of TreeSize leaves; check it with
// tlog.CheckRecord. Hashes are base64 in JSON.
type InclusionProof struct {
	LeafIndex int64       `json:"leaf_index"`
	TreeSize  int64       `json:"tree_size"`
	LeafHash  tlog.Hash   `json:"leaf_hash"`
	Hashes    []tlog.Hash `json:"hashes"`
}

// ConsistencyProof proves that the tenant's tree of From leaves is a
// prefix of its tree of To leaves; check it with tlog.CheckTree.
type ConsistencyProof struct {
	From   int64       `json:"from"`
	To     int64       `json:"to"`
	Hashes []tlog.Hash `json:"hashes"`
}

// ManifestLog is what the manifest of an export or of a stream batch says
// of its tenant's integrity log: the signed checkpoint that covers its
// records, and all a verifier needs to recompute that checkpoint's root
// from the records alone (docs/api.md, "Verifying an export").
type ManifestLog struct {
	// Checkpoint is the signed checkpoint (a C2SP signed note) of a tree
	// that holds every record.
	Checkpoint string `json:"checkpoint"`
	// FirstLeaf and EndLeaf bound the leaves of the records: every record
	// is one of the leaves FirstLeaf to EndLeaf-1.
	FirstLeaf int64 `json:"first_leaf"`
	EndLeaf   int64 `json:"end_leaf"`
	// Leaves is the object of the hashes of the leaves FirstLeaf to
	// EndLeaf-1, 32 bytes each, in leaf order.
	Leaves ExportFile `json:"leaves"`
	// Left and Right are the compact ranges of the leaves before FirstLeaf
	// and from EndLeaf to the checkpoint's size: the roots of the fewest
	// complete subtrees that cover them, left to right.
	Left  []tlog.Hash `json:"left"`
	Right []tlog.Hash `json:"right"`
	// Deletions are the signed records of the deletions of leaves in the
	// range whose events audex deleted.
	Deletions []LogDeletion `json:"deletions"`
	// Missing are the leaves in the range whose events are gone without a
	// deletion record: deleted behind audex's back. The range reaches
	// over such leaves at its ends too.
	Missing []MissingLeaf `json:"missing"`
	// Excluded counts the leaves in the range whose events are stored but
	// are not records: the export's or stream's filters left them out.
	Excluded int64 `json:"excluded"`
}

// LogDeletion is a deletion record (an audit.purge_completed,
// audit.purge_failed or audit.event_deleted event, whose metadata's "leaves" are the [from, to)
// ranges of the leaves it deleted) with its inclusion proof against the
// manifest's checkpoint.
type LogDeletion struct {
	LeafIndex int64           `json:"leaf_index"`
	Record    json.RawMessage `json:"record"`
	Hashes    []tlog.Hash     `json:"hashes"`
}

// MissingLeaf is a leaf whose event is gone with no deletion record.
type MissingLeaf struct {
	LeafIndex int64  `json:"leaf_index"`
	EventID   string `json:"event_id"`
}
