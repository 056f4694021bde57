package audex

import "golang.org/x/mod/sumdb/tlog"

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
