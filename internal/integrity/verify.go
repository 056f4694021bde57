package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
)

// CheckInclusion checks that data, an event's canonical encoding, is the
// leaf that proof p ties to checkpoint cp's root. Its errors say CHANGED
// (the event is not the leaf's) or NOT IN THE LOG (the proof does not lead
// to the root).
func CheckInclusion(cp Checkpoint, data []byte, p audex.InclusionProof) error {
	leaf := tlog.RecordHash(data)
	if leaf != p.LeafHash {
		return fmt.Errorf("CHANGED: the event hashes to %s, the log's leaf %d is %s", leaf, p.LeafIndex, p.LeafHash)
	}
	if p.TreeSize != cp.Size {
		return fmt.Errorf("the proof is for a tree of %d leaves, the checkpoint's holds %d", p.TreeSize, cp.Size)
	}
	if err := tlog.CheckRecord(p.Hashes, cp.Size, cp.Root, p.LeafIndex, leaf); err != nil {
		return fmt.Errorf("NOT IN THE LOG: the proof of leaf %d does not lead to the checkpoint's root (%v)", p.LeafIndex, err)
	}
	return nil
}

// CheckConsistency checks that the tree of checkpoint old is a prefix of
// the tree of checkpoint cur by proof p. Its errors say the two are of two
// logs, that the log SHRANK, or that it was REWRITTEN.
func CheckConsistency(old, cur Checkpoint, p audex.ConsistencyProof) error {
	switch {
	case old.Origin != cur.Origin:
		return fmt.Errorf("the checkpoints are of two logs: %s and %s", old.Origin, cur.Origin)
	case cur.Size < old.Size:
		return fmt.Errorf("the log SHRANK: the newer checkpoint holds %d leaves, the older one %d", cur.Size, old.Size)
	case p.From != old.Size || p.To != cur.Size:
		return fmt.Errorf("the proof is from %d to %d leaves, the checkpoints hold %d and %d", p.From, p.To, old.Size, cur.Size)
	}
	if err := tlog.CheckTree(p.Hashes, cur.Size, cur.Root, old.Size, old.Root); err != nil {
		return fmt.Errorf("the log was REWRITTEN: the tree of %d leaves is not a prefix of the tree of %d (%v)", old.Size, cur.Size, err)
	}
	return nil
}

// manifestSignatureHeader is the first line of a manifest signature's
// text.
const manifestSignatureHeader = "audex manifest"

// manifestSignatureText is what a manifest's signature signs: the header,
// the origin of the tenant's log and the SHA-256 of the manifest's bytes,
// a line each.
func manifestSignatureText(origin string, manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return manifestSignatureHeader + "\n" + origin + "\n" + hex.EncodeToString(sum[:]) + "\n"
}

// SignManifest returns the signature of a manifest of the tenant whose
// log's origin is origin: a signed note of manifestSignatureText.
func (k *Keys) SignManifest(origin string, manifest []byte) ([]byte, error) {
	msg, err := note.Sign(&note.Note{Text: manifestSignatureText(origin, manifest)}, k.signer)
	if err != nil {
		return nil, fmt.Errorf("sign manifest: %w", err)
	}
	return msg, nil
}

// OpenManifestSignature checks signature sig of the manifest's bytes with
// the verifier keys and returns the origin it names.
func OpenManifestSignature(sig, manifest []byte, verifierKeys []string) (string, error) {
	n, err := openNote(sig, verifierKeys)
	if err != nil {
		return "", fmt.Errorf("the manifest's signature: %w", err)
	}
	lines := strings.SplitN(n.Text, "\n", 3)
	if len(lines) != 3 || lines[0] != manifestSignatureHeader {
		return "", errors.New("the manifest's signature signs no audex manifest")
	}
	if n.Text != manifestSignatureText(lines[1], manifest) {
		return lines[1], errors.New("the manifest was EDITED: its bytes are not the ones signed")
	}
	return lines[1], nil
}

// LogCheck checks the records of an export or of a stream batch against
// what its manifest says of the log: give it each record (Record), then
// ask for the verdict (Verdict).
type LogCheck struct {
	m          audex.ManifestLog
	checkpoint Checkpoint
	leaves     []tlog.Hash         // of the leaves m.FirstLeaf...
	byHash     map[tlog.Hash]int64 // leaf index by leaf hash
	matched    []bool              // by leaf - m.FirstLeaf
	deletedBy  map[int64]string    // leaf -> id of its deletion record
	missing    map[int64]string    // leaf -> event id
	records    int64
	notInLog   int64 // records that are no leaf of the range
	problems   []string
}

// NewLogCheck checks what manifest log m says with the verifier keys: the
// checkpoint's signature, that the leaves read from leaves (the manifest's
// leaves object) and its compact ranges make the checkpoint's root, and
// each deletion record's inclusion proof. Problems found are in the
// verdict; the error is for what stops the check (a checkpoint that does
// not verify, a leaves object that cannot be read).
func NewLogCheck(m audex.ManifestLog, leaves io.Reader, verifierKeys []string) (*LogCheck, error) {
	cp, err := OpenCheckpoint([]byte(m.Checkpoint), verifierKeys)
	if err != nil {
		return nil, fmt.Errorf("the manifest's checkpoint: %w", err)
	}
	if m.FirstLeaf < 0 || m.EndLeaf <= m.FirstLeaf || m.EndLeaf > cp.Size {
		return nil, fmt.Errorf("the manifest's leaves %d to %d are not within the checkpoint's %d", m.FirstLeaf, m.EndLeaf, cp.Size)
	}
	c := &LogCheck{m: m, checkpoint: cp, byHash: map[tlog.Hash]int64{}, deletedBy: map[int64]string{}, missing: map[int64]string{}}
	n := m.EndLeaf - m.FirstLeaf
	c.leaves = make([]tlog.Hash, 0, n)
	var h tlog.Hash
	for {
		if _, err := io.ReadFull(leaves, h[:]); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("the leaves object: %w", err)
		}
		c.leaves = append(c.leaves, h)
	}
	if int64(len(c.leaves)) != n {
		return nil, fmt.Errorf("the leaves object holds %d hashes, the manifest says %d", len(c.leaves), n)
	}
	c.matched = make([]bool, n)
	for i, h := range c.leaves {
		c.byHash[h] = m.FirstLeaf + int64(i)
	}
	if root, err := c.root(); err != nil || root != cp.Root {
		c.problem("the leaves %d to %d with the manifest's compact ranges do not make the checkpoint's root: the leaves object or the manifest was CHANGED", m.FirstLeaf, m.EndLeaf-1)
	}
	for _, d := range m.Deletions {
		c.deletion(d)
	}
	for _, l := range m.Missing {
		c.missing[l.LeafIndex] = l.EventID
	}
	return c, nil
}

// root computes the tree's root from the left compact range, the leaves
// and the right compact range.
func (c *LogCheck) root() (tlog.Hash, error) {
	f := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r, err := f.NewRange(0, uint64(c.m.FirstLeaf), hashBytes(c.m.Left))
	if err != nil {
		return tlog.Hash{}, err
	}
	for i := range c.leaves {
		if err := r.Append(c.leaves[i][:], nil); err != nil {
			return tlog.Hash{}, err
		}
	}
	right, err := f.NewRange(uint64(c.m.EndLeaf), uint64(c.checkpoint.Size), hashBytes(c.m.Right))
	if err != nil {
		return tlog.Hash{}, err
	}
	if err := r.AppendRange(right, nil); err != nil {
		return tlog.Hash{}, err
	}
	root, err := r.GetRootHash(nil)
	var h tlog.Hash
	copy(h[:], root)
	return h, err
}

func hashBytes(hashes []tlog.Hash) [][]byte {
	out := make([][]byte, len(hashes))
	for i := range hashes {
		out[i] = hashes[i][:]
	}
	return out
}

// deletion checks deletion record d and notes the leaves it deleted.
func (c *LogCheck) deletion(d audex.LogDeletion) {
	var record bytes.Buffer
	if err := json.Compact(&record, d.Record); err != nil {
		c.problem("deletion record at leaf %d: not JSON (%v)", d.LeafIndex, err)
		return
	}
	var e struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		Metadata struct {
			Leaves [][2]int64 `json:"leaves"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(record.Bytes(), &e); err != nil || !strings.HasPrefix(e.Action, audex.ReservedActionPrefix) {
		c.problem("deletion record at leaf %d: not a deletion record of audex", d.LeafIndex)
		return
	}
	leaf := tlog.RecordHash(record.Bytes())
	if err := tlog.CheckRecord(d.Hashes, c.checkpoint.Size, c.checkpoint.Root, d.LeafIndex, leaf); err != nil {
		c.problem("deletion record %s at leaf %d is NOT IN THE LOG: a forged deletion (%v)", e.ID, d.LeafIndex, err)
		return
	}
	for _, r := range e.Metadata.Leaves {
		for i := max(r[0], c.m.FirstLeaf); i < min(r[1], c.m.EndLeaf); i++ {
			c.deletedBy[i] = e.ID + " (" + e.Action + ")"
		}
	}
}

// Record checks one record, data its canonical encoding (an NDJSON line
// without its newline); where says where it was read, for the verdict.
func (c *LogCheck) Record(where string, data []byte) {
	c.records++
	var e struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(data, &e)
	i, ok := c.byHash[tlog.RecordHash(data)]
	switch {
	case !ok:
		c.notInLog++
		c.problem("%s: event %q is NOT IN THE LOG: changed after it was sealed, or never received by audex", where, e.ID)
	case c.matched[i-c.m.FirstLeaf]:
		c.problem("%s: event %q is DOUBLED: leaf %d was already read", where, e.ID, i)
	default:
		c.matched[i-c.m.FirstLeaf] = true
	}
}

func (c *LogCheck) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// Verdict is what a LogCheck found.
type Verdict struct {
	// Checkpoint is the manifest's checkpoint, its signature checked.
	Checkpoint Checkpoint
	// FirstLeaf and EndLeaf bound the leaves checked.
	FirstLeaf, EndLeaf int64
	// Records is how many records were read; Matched how many are leaves.
	Records, Matched int64
	// Deleted counts the range's leaves that audex deleted, by the
	// deletion record (id and action) that lists them.
	Deleted map[string]int64
	// Excluded counts the range's leaves whose events are stored but are
	// not records: the export's or stream's filters left them out.
	Excluded int64
	// Problems say what does not check and where; none when all does.
	Problems []string
}

// Verdict ends the check: every leaf of the range that no record matched
// is a deletion that a record in the log lists, a leaf the manifest says
// is missing (deleted behind audex's back), or left out by the filters.
func (c *LogCheck) Verdict() Verdict {
	v := Verdict{Checkpoint: c.checkpoint, FirstLeaf: c.m.FirstLeaf, EndLeaf: c.m.EndLeaf, Records: c.records, Deleted: map[string]int64{}}
	for i, matched := range c.matched {
		leaf := c.m.FirstLeaf + int64(i)
		switch by, deleted := c.deletedBy[leaf]; {
		case matched:
			v.Matched++
		case deleted:
			v.Deleted[by]++
		default:
			if id, ok := c.missing[leaf]; ok {
				c.problem("leaf %d (event %q) is MISSING: its event was deleted without a deletion record", leaf, id)
			} else {
				v.Excluded++
			}
		}
	}
	// Leaves whose records were changed are no records either; beyond
	// those, a leaf the manifest did not leave out is a record removed.
	if removed := v.Excluded - c.m.Excluded - c.notInLog; removed > 0 {
		c.problem("%d leaves of the range are neither records, deletions, missing nor left out by the filters (the manifest says %d were): records were REMOVED from the export", removed, c.m.Excluded)
	}
	v.Problems = c.problems
	return v
}
