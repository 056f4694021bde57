package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
)

// The integrity log (migrations/00011_integrity_log.sql): a tenant's
// events in arrival order are the leaves of a tlog tree, whose stored
// hashes live in log_leaves, each leaf's row holding the hashes it
// completes.

// sealPageSize is how many events a seal reads per statement.
const sealPageSize = 2000

// sealBudget is the time budget of each statement of a seal's transaction.
const sealBudget = 10 * time.Minute

// SignCheckpoint signs checkpoint c and returns the signed note.
type SignCheckpoint func(c integrity.Checkpoint) (string, error)

// SealLog appends to the tenant's log the events received since its last
// seal, at most maxLeaves of them (the oldest received), and stores the
// checkpoint of the new size signed by sign (origin: integrity.Origin of
// logName and the tenant). It returns how many leaves it added and
// whether more events are waiting. The barrier of exports makes every
// event received before the seal's end committed, so each event becomes
// exactly one leaf. Safe to run concurrently (the tenant's log_state row
// serialises seals) and to retry.
func SealLog(ctx context.Context, db DBTX, tenantID, logName string, maxLeaves int, sign SignCheckpoint) (int64, bool, error) {
	var sealedTo time.Time
	err := db.QueryRow(ctx, `SELECT sealed_to FROM log_state WHERE tenant_id = $1`, tenantID).Scan(&sealedTo)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, false, wrapSeal(err)
	}
	var pending bool
	err = db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE tenant_id = $1 AND received_at >= $2)`, tenantID, sealedTo).Scan(&pending)
	if err != nil || !pending {
		return 0, false, wrapSeal(err)
	}
	to, err := IngestBarrier(ctx, db, tenantID)
	if err != nil {
		return 0, false, wrapSeal(err)
	}
	var added int64
	var more bool
	err = withBudget(ctx, db, sealBudget, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO log_state (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, tenantID); err != nil {
			return err
		}
		var size int64
		if err := tx.QueryRow(ctx, `SELECT sealed_to, tree_size FROM log_state WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&sealedTo, &size); err != nil {
			return err
		}
		if !to.After(sealedTo) {
			return nil // a concurrent seal went further
		}
		// At most maxLeaves.
		var err error
		if to, more, err = arrivalsEnd(ctx, tx, tenantID, audex.Filter{}, sealedTo, to, maxLeaves); err != nil {
			return err
		}
		r := newLogHashReader(ctx, tx, tenantID)
		first := size
		var after *Arrival
		for {
			page, err := ListArrivals(ctx, tx, tenantID, audex.Filter{}, sealedTo, to, after, sealPageSize)
			if err != nil {
				return err
			}
			rows := make([][]any, len(page))
			for i := range page {
				hashes, err := tlog.StoredHashes(size, integrity.LeafData(&page[i]), r)
				if err != nil {
					return err
				}
				packed := make([]byte, 0, len(hashes)*tlog.HashSize)
				for j, h := range hashes {
					r.cache[tlog.StoredHashIndex(0, size)+int64(j)] = h
					packed = append(packed, h[:]...)
				}
				rows[i] = []any{tenantID, size, page[i].ID, packed}
				size++
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"log_leaves"}, []string{"tenant_id", "leaf_index", "event_id", "hashes"}, pgx.CopyFromRows(rows)); err != nil {
				return err
			}
			if len(page) < sealPageSize {
				break
			}
			r.keepFrontier(size)
			last := page[len(page)-1]
			after = &Arrival{ReceivedAt: last.ReceivedAt, ID: last.ID}
		}
		added = size - first
		if _, err := tx.Exec(ctx, `UPDATE log_state SET sealed_to = $2, tree_size = $3 WHERE tenant_id = $1`, tenantID, to, size); err != nil {
			return err
		}
		if added == 0 {
			return nil
		}
		root, err := tlog.TreeHash(size, r)
		if err != nil {
			return err
		}
		signed, err := sign(integrity.Checkpoint{Origin: integrity.Origin(logName, tenantID), Size: size, Root: root})
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO log_checkpoints (tenant_id, tree_size, root_hash, note) VALUES ($1, $2, $3, $4)`,
			tenantID, size, root[:], signed)
		return err
	})
	if err != nil {
		return 0, false, wrapSeal(err)
	}
	return added, more, nil
}

func wrapSeal(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("seal log: %w", translate(err))
}

// SealAllLogs seals every tenant's new events, maxLeaves per transaction,
// until none is left or ctx ends, and returns how many leaves it added.
func SealAllLogs(ctx context.Context, db DBTX, logName string, maxLeaves int, sign SignCheckpoint) (int64, error) {
	tenants, err := queryAll(ctx, db, "seal log", pgx.RowTo[string], tenantsWithEvents+` ORDER BY 1`)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, tenant := range tenants {
		for more := true; more; {
			var n int64
			if n, more, err = SealLog(ctx, db, tenant, logName, maxLeaves, sign); err != nil {
				return total, err
			}
			total += n
		}
	}
	return total, nil
}

// logHashReader reads a tenant's stored hashes (tlog.HashReader): those
// of this seal from cache, the others from log_leaves.
type logHashReader struct {
	ctx      context.Context
	db       DBTX
	tenantID string
	cache    map[int64]tlog.Hash
}

func newLogHashReader(ctx context.Context, db DBTX, tenantID string) *logHashReader {
	return &logHashReader{ctx: ctx, db: db, tenantID: tenantID, cache: map[int64]tlog.Hash{}}
}

// keepFrontier forgets the cached hashes but the roots of the complete
// subtrees of a tree of size leaves: all that the next leaves and the
// tree's hash read (a hash forgotten is read from the table again), so
// that a seal of 500,000 leaves keeps a few dozen hashes, not a million.
func (r *logHashReader) keepFrontier(size int64) {
	frontier := make(map[int64]tlog.Hash, 64)
	for level := 0; size>>level > 0; level++ {
		if (size>>level)&1 == 1 {
			index := tlog.StoredHashIndex(level, (size>>level)-1)
			if h, ok := r.cache[index]; ok {
				frontier[index] = h
			}
		}
	}
	r.cache = frontier
}

// ReadHashes returns the stored hashes at indexes.
func (r *logHashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var leaves []int64
	wanted := map[int64][]int{} // by leaf: the positions in out
	need, found := 0, 0
	for i, index := range indexes {
		if h, ok := r.cache[index]; ok {
			out[i] = h
			continue
		}
		level, n := tlog.SplitStoredHashIndex(index)
		// The hash at (level, n) is the level-th stored by the last leaf
		// of its subtree.
		leaf := (n+1)<<level - 1
		if _, ok := wanted[leaf]; !ok {
			leaves = append(leaves, leaf)
		}
		wanted[leaf] = append(wanted[leaf], i)
		need++
	}
	if len(leaves) == 0 {
		return out, nil
	}
	rows, err := r.db.Query(r.ctx, `SELECT leaf_index, hashes FROM log_leaves WHERE tenant_id = $1 AND leaf_index = ANY($2)`, r.tenantID, leaves)
	if err != nil {
		return nil, err
	}
	var leaf int64
	var hashes []byte
	_, err = pgx.ForEachRow(rows, []any{&leaf, &hashes}, func() error {
		for _, i := range wanted[leaf] {
			level, _ := tlog.SplitStoredHashIndex(indexes[i])
			if len(hashes) < (level+1)*tlog.HashSize {
				return fmt.Errorf("log leaf %d of %s holds %d hashes, not %d", leaf, r.tenantID, len(hashes)/tlog.HashSize, level+1)
			}
			copy(out[i][:], hashes[level*tlog.HashSize:])
			r.cache[indexes[i]] = out[i]
			found++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found != need {
		return nil, fmt.Errorf("log of %s: %d of %d stored hashes missing", r.tenantID, need-found, len(indexes))
	}
	return out, nil
}

// LatestLogCheckpoint returns the tenant's latest signed checkpoint (its
// tree size and note); ErrNotFound when its log was never sealed.
func LatestLogCheckpoint(ctx context.Context, db DBTX, tenantID string) (int64, string, error) {
	return logCheckpoint(ctx, db, `tenant_id = $1 ORDER BY tree_size DESC LIMIT 1`, tenantID)
}

// LogCheckpointAt returns the tenant's signed checkpoint of tree size
// size; ErrNotFound when none was signed at that size.
func LogCheckpointAt(ctx context.Context, db DBTX, tenantID string, size int64) (int64, string, error) {
	return logCheckpoint(ctx, db, `tenant_id = $1 AND tree_size = $2`, tenantID, size)
}

func logCheckpoint(ctx context.Context, db DBTX, where string, args ...any) (int64, string, error) {
	var size int64
	var note string
	err := db.QueryRow(ctx, `SELECT tree_size, note FROM log_checkpoints WHERE `+where, args...).Scan(&size, &note)
	if err != nil {
		return 0, "", fmt.Errorf("log checkpoint: %w", translate(err))
	}
	return size, note, nil
}

// LogInclusion is an event's inclusion proof in a tree of TreeSize leaves
// (tlog.RecordProof, RFC 6962).
type LogInclusion struct {
	LeafIndex int64
	TreeSize  int64
	LeafHash  tlog.Hash
	Hashes    []tlog.Hash
}

// ErrNoCheckpoint is the error of a proof asked against a tree size that
// no signed checkpoint has.
var ErrNoCheckpoint = errors.New("no checkpoint of that size")

// ErrNotInLog is the error of a proof asked for a stored event that was
// received before the log's last seal and yet is no leaf: a seal takes
// every event received before its end, so the row was written behind
// audex's back.
var ErrNotInLog = errors.New("received before the last seal, yet not in the log")

// ErrNotSealed is the error of a proof asked for an event that the log
// (or the checkpoint asked for) does not hold yet.
var ErrNotSealed = errors.New("not in the log yet")

// ProveLogInclusion returns the inclusion proof of the tenant's event id
// in the tree of size leaves, which must be a signed checkpoint's
// (ErrNoCheckpoint otherwise). An event the tenant never stored is
// ErrNotFound; one stored but not sealed yet, or sealed after size,
// ErrNotSealed; one received before the last seal that has no leaf,
// ErrNotInLog. A deleted event keeps its leaf and its proof; an id
// ingested again after its deletion is proved by its newest leaf.
func ProveLogInclusion(ctx context.Context, db DBTX, tenantID, id string, size int64) (LogInclusion, error) {
	p := LogInclusion{TreeSize: size}
	if err := requireCheckpoint(ctx, db, tenantID, size); err != nil {
		return p, err
	}
	var hashes []byte
	err := db.QueryRow(ctx, `SELECT leaf_index, hashes FROM log_leaves WHERE tenant_id = $1 AND event_id = $2
		ORDER BY leaf_index DESC LIMIT 1`, tenantID, id).Scan(&p.LeafIndex, &hashes)
	if errors.Is(err, pgx.ErrNoRows) {
		e, err := GetEvent(ctx, db, tenantID, id)
		if err != nil {
			return p, err
		}
		var sealedTo time.Time
		if err := db.QueryRow(ctx, `SELECT sealed_to FROM log_state WHERE tenant_id = $1`, tenantID).Scan(&sealedTo); err != nil {
			return p, fmt.Errorf("log inclusion proof: %w", translate(err))
		}
		if e.ReceivedAt.Before(sealedTo) {
			return p, ErrNotInLog
		}
		return p, ErrNotSealed
	}
	if err != nil {
		return p, fmt.Errorf("log inclusion proof: %w", translate(err))
	}
	if p.LeafIndex >= size {
		return p, ErrNotSealed
	}
	copy(p.LeafHash[:], hashes)
	r := newLogHashReader(ctx, db, tenantID)
	if p.Hashes, err = tlog.ProveRecord(size, p.LeafIndex, r); err != nil {
		return p, fmt.Errorf("log inclusion proof: %w", translate(err))
	}
	return p, nil
}

// ProveLogConsistency returns the proof that the tenant's tree of from
// leaves is a prefix of its tree of to leaves (tlog.TreeProof, RFC 6962);
// both must be the sizes of signed checkpoints (ErrNoCheckpoint
// otherwise).
func ProveLogConsistency(ctx context.Context, db DBTX, tenantID string, from, to int64) ([]tlog.Hash, error) {
	for _, size := range []int64{from, to} {
		if err := requireCheckpoint(ctx, db, tenantID, size); err != nil {
			return nil, err
		}
	}
	r := newLogHashReader(ctx, db, tenantID)
	proof, err := tlog.ProveTree(to, from, r)
	if err != nil {
		return nil, fmt.Errorf("log consistency proof: %w", translate(err))
	}
	return proof, nil
}

// requireCheckpoint returns ErrNoCheckpoint unless the tenant has a signed
// checkpoint of size.
func requireCheckpoint(ctx context.Context, db DBTX, tenantID string, size int64) error {
	_, _, err := LogCheckpointAt(ctx, db, tenantID, size)
	if errors.Is(err, ErrNotFound) {
		return ErrNoCheckpoint
	}
	return err
}
