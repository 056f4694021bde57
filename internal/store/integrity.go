package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	mathbits "math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/compact"
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
	sealedTo, err := LogSealedTo(ctx, db, tenantID)
	if err != nil {
		return 0, false, err
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
				rows[i] = []any{tenantID, size, page[i].ID, packed, page[i].OccurredAt}
				size++
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"log_leaves"}, []string{"tenant_id", "leaf_index", "event_id", "hashes", "occurred_at"}, pgx.CopyFromRows(rows)); err != nil {
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

// LogSealedTo returns the end of the tenant's last seal: its log holds
// every event received before it (the zero time before the first seal).
func LogSealedTo(ctx context.Context, db DBTX, tenantID string) (time.Time, error) {
	var sealedTo time.Time
	err := db.QueryRow(ctx, `SELECT sealed_to FROM log_state WHERE tenant_id = $1`, tenantID).Scan(&sealedTo)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return sealedTo, wrapSeal(err)
	}
	return sealedTo, nil
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

// deletedLeaves returns the [from, to) ranges of the tenant's leaves
// whose deletion names by (a purge's id, an audit.event_deleted event's
// id), in leaf order: what the deletion record lists.
func deletedLeaves(ctx context.Context, db DBTX, tenantID, by string) ([][2]int64, error) {
	ranges, err := queryAll(ctx, db, "deleted leaves", func(row pgx.CollectableRow) ([2]int64, error) {
		var r [2]int64
		err := row.Scan(&r[0], &r[1])
		return r, err
	}, `SELECT min(leaf_index), max(leaf_index) + 1 FROM (
			SELECT leaf_index, leaf_index - row_number() OVER (ORDER BY leaf_index) AS run
			FROM log_leaves WHERE tenant_id = $1 AND deleted_by = $2) l
		GROUP BY run ORDER BY 1`, tenantID, by)
	if ranges == nil {
		ranges = [][2]int64{}
	}
	return ranges, err
}

// LeafSet is a set of leaf indexes of a tree: one bit per leaf.
type LeafSet []uint64

func newLeafSet(size int64) LeafSet { return make(LeafSet, (size+63)/64) }

// Has reports whether leaf i is in the set.
func (s LeafSet) Has(i int64) bool { return i >= 0 && i/64 < int64(len(s)) && s[i/64]&(1<<(i%64)) != 0 }

func (s LeafSet) add(i int64) { s[i/64] |= 1 << (i % 64) }

// bounds returns the first leaf of the set and one past its last; 0, 0
// when it is empty.
func (s LeafSet) bounds() (first, end int64) {
	first = -1
	for w, bits := range s {
		if bits == 0 {
			continue
		}
		if first < 0 {
			first = int64(w)*64 + int64(mathbits.TrailingZeros64(bits))
		}
		end = int64(w)*64 + 64 - int64(mathbits.LeadingZeros64(bits))
	}
	if first < 0 {
		return 0, 0
	}
	return first, end
}

// LeavesOf returns the leaves, in the tree of size leaves, of the
// tenant's stored events that f matches and that were received from from
// on and before through: those of an export (from its start to its as_of)
// or of a stream batch. through must be sealed.
//
// It works leavesChunk arrivals at a time: leaves are in arrival order,
// so the leaves of the events received in a span of time lie between the
// leaves of the first events received from its start on and from its end
// on, and each chunk is bounded on both sides (one join of a tenant's
// 5,000,000 events with its whole log ran past the worker's 30 s budget).
// A chunk's leaves come from the log alone when they can
// (leavesByTime), else from a join of its events with the log.
func LeavesOf(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, through time.Time, size int64) (LeafSet, error) {
	return leavesOf(ctx, db, tenantID, f, from, through, size, leavesChunk)
}

// leavesOf is LeavesOf joining chunk arrivals at a time.
func leavesOf(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, through time.Time, size int64, chunk int) (LeafSet, error) {
	set := newLeafSet(size)
	first, err := firstLeafFrom(ctx, db, tenantID, from, through, 0)
	if err != nil {
		return nil, err
	}
	for {
		end, more, err := arrivalsEnd(ctx, db, tenantID, audex.Filter{}, from, through, chunk)
		if err != nil {
			return nil, fmt.Errorf("leaves of events: %w", translate(err))
		}
		last := size
		if more {
			if last, err = firstLeafFrom(ctx, db, tenantID, end, through, size); err != nil {
				return nil, err
			}
		}
		last = min(last, size)
		found, err := leavesByTime(ctx, db, tenantID, f, from, end, first, last, set)
		if err == nil && !found {
			err = joinLeaves(ctx, db, tenantID, f, from, end, first, last, set)
		}
		if err != nil {
			return nil, fmt.Errorf("leaves of events: %w", translate(err))
		}
		if !more {
			return set, nil
		}
		from, first = end, last
	}
}

// joinLeaves adds to set the leaves from first to before last of the
// tenant's events that f matches received from from on and before to, by
// a hash join: the planner's guess of a log that grew since its
// statistics made it a nested loop, which for 50,000 leaves and as many
// events ran past the worker's budget.
func joinLeaves(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, to time.Time, first, last int64, set LeafSet) error {
	return withSettings(ctx, db, localSettings("enable_nestloop", "off", "enable_mergejoin", "off"), func(tx pgx.Tx) error {
		var q queryBuilder
		arrivals(&q, tenantID, f, from, to)
		rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT l.leaf_index FROM (SELECT tenant_id, id FROM events WHERE %s) e
			JOIN log_leaves l ON l.tenant_id = e.tenant_id AND l.event_id = e.id
			WHERE l.deleted_by IS NULL AND l.leaf_index >= %s AND l.leaf_index < %s`,
			strings.Join(q.conds, " AND "), q.arg(first), q.arg(last)), q.args...)
		if err != nil {
			return err
		}
		var leaf int64
		_, err = pgx.ForEachRow(rows, []any{&leaf}, func() error { set.add(leaf); return nil })
		return err
	})
}

// leavesByTime adds to set the leaves from first to before last of the
// tenant's events that f matches received from from on and before to, as
// joinLeaves does, from the log alone when f selects by time alone: the
// range's leaves that audex did not delete and whose event's occurred_at
// (kept on the leaf by the seal) f keeps. Those are the records' leaves
// when their event ids are, as a multiset, the ids of the events that f
// matches; this compares the two by their count and two sums of a seeded
// 64-bit hash of the id (hashtextextended), fresh seeds each call. An
// event deleted behind audex's back, or ingested again, or inserted
// without a leaf, breaks the equality, and found is false: the caller
// joins instead, which tells such leaves apart. So does a record's leaf
// without a time (sealed before the seal kept them).
//
// Unequal multisets that compare equal would need a collision of both
// sums under seeds chosen after the tampering: the manifest would then
// call a leaf of a gone event a record, which the verifier still fails
// (no record has its hash), only without naming it missing.
func leavesByTime(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, to time.Time, first, last int64, set LeafSet) (found bool, err error) {
	// ReceivedBefore is kept on the events' side only: a leaf past it
	// breaks the equality.
	if !SelectsByTime(f) {
		return false, nil
	}
	seeds := [2]int64{rand.Int64(), rand.Int64()}
	var events, leaves sqlIDMultiset
	var q queryBuilder
	arrivals(&q, tenantID, f, from, to)
	sums := idSums(&q, "id", seeds)
	err = db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), %s FROM events WHERE %s`, sums, strings.Join(q.conds, " AND ")),
		q.args...).Scan(&events.count, &events.sums[0], &events.sums[1])
	if err != nil {
		return false, err
	}
	var l queryBuilder
	leavesOfTimes(&l, tenantID, f, first, last)
	var indexes []int64
	err = db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*), %s, coalesce(array_agg(leaf_index), '{}') FROM log_leaves WHERE %s`,
		idSums(&l, "event_id", seeds), strings.Join(l.conds, " AND ")),
		l.args...).Scan(&leaves.count, &leaves.sums[0], &leaves.sums[1], &indexes)
	if err != nil || leaves != events {
		return false, err
	}
	for _, i := range indexes {
		set.add(i)
	}
	return true, nil
}

// sqlIDMultiset is what leavesByTime compares of two multisets of event
// ids: their count and two sums of seeded hashes (numeric, as text).
type sqlIDMultiset struct {
	count int64
	sums  [2]string
}

// leavesOfTimes adds to q the conditions on log_leaves of the leaves from
// first to before last that audex did not delete and whose event's
// occurred_at (kept on the leaf by the seal) f's times keep.
func leavesOfTimes(q *queryBuilder, tenantID string, f audex.Filter, first, last int64) {
	q.where("tenant_id = " + q.arg(tenantID))
	q.where("leaf_index >= " + q.arg(first))
	q.where("leaf_index < " + q.arg(last))
	q.where("deleted_by IS NULL")
	q.filter(audex.Filter{Since: f.Since, Until: f.Until}) // on the leaves' occurred_at
}

// LeavesOfTimes returns, from the log alone, the leaves that an export's
// records have when the log and the events agree: of the tenant's tree of
// size leaves, those from the leaf of its first event received from from
// on to before the leaf of its first event received from through on, that
// audex did not delete and whose event's occurred_at f keeps. f must
// select by time alone (SelectsByTime). The caller checks the guess:
// WriteManifestLog tallies the set's event ids, and they must equal the
// records' ids (IDMultiset); when they do not (an event deleted, inserted
// or ingested again behind audex's back, a leaf sealed before the seal
// kept times), LeavesOf finds the leaves instead. It reads no event but the two firsts: an export's
// parts read the events, and tally their ids as they go.
func LeavesOfTimes(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, through time.Time, size int64) (LeafSet, error) {
	if !SelectsByTime(f) {
		return nil, errors.New("leaves of times: the filter selects by more than time")
	}
	first, err := firstLeafFrom(ctx, db, tenantID, from, through, size)
	if err != nil {
		return nil, err
	}
	last, err := firstLeafFrom(ctx, db, tenantID, through, endOfTime, size)
	if err != nil {
		return nil, err
	}
	set := newLeafSet(size)
	// The tenant's leaves by its index or by their time's, never the
	// whole log's table: the guess of a log that grew since its
	// statistics made a month's leaves of one tenant a parallel scan of
	// every tenant's.
	err = withSettings(ctx, db, leavesOfTimesSettings, func(tx pgx.Tx) error {
		for begin := first; begin < min(last, size); begin += leavesOfTimesChunk {
			var q queryBuilder
			leavesOfTimes(&q, tenantID, f, begin, min(begin+leavesOfTimesChunk, last, size))
			rows, err := tx.Query(ctx, `SELECT leaf_index FROM log_leaves WHERE `+strings.Join(q.conds, " AND "), q.args...)
			if err != nil {
				return err
			}
			var leaf int64
			if _, err := pgx.ForEachRow(rows, []any{&leaf}, func() error { set.add(leaf); return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("leaves of times: %w", translate(err))
	}
	return set, nil
}

// leavesOfTimesSettings are LeavesOfTimes' plan settings.
var leavesOfTimesSettings = localSettings("enable_seqscan", "off", "max_parallel_workers_per_gather", "0", "jit", "off")

// leavesOfTimesChunk is how many leaves one statement of LeavesOfTimes
// reads through.
const leavesOfTimesChunk = 1_000_000

// endOfTime is later than any event's received_at.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// SelectsByTime reports whether f selects events by their times alone
// (since, until, received before), as LeavesOfTimes needs.
func SelectsByTime(f audex.Filter) bool { return !rowFilters(f) }

// IDMultiset is what an export's manifest compares of its records' event
// ids, tallied as its parts are written, and of its leaves' (tallied by
// WriteManifestLog): their count and two sums, modulo 2^64, of each id's
// 64-bit hash under two seeds (hash/maphash) drawn afresh for each
// export. A collision of both sums under seeds drawn after the events
// were stored would make a manifest call a leaf of a gone event a record,
// which the verifier still fails (no record has its hash), only without
// naming it missing.
type IDMultiset struct {
	seeds [2]maphash.Seed
	count uint64
	sums  [2]uint64
}

// NewIDMultiset returns an empty multiset with fresh seeds.
func NewIDMultiset() *IDMultiset {
	return &IDMultiset{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

// Like returns an empty multiset with m's seeds, to compare with m.
func (m *IDMultiset) Like() *IDMultiset { return &IDMultiset{seeds: m.seeds} }

// Reset empties m, keeping its seeds.
func (m *IDMultiset) Reset() { m.count, m.sums = 0, [2]uint64{} }

// Add adds id.
func (m *IDMultiset) Add(id string) {
	m.count++
	for i, seed := range m.seeds {
		m.sums[i] += maphash.String(seed, id)
	}
}

// Equal reports whether m and o hold the same ids, as far as their
// counts and sums tell; multisets of different seeds are never equal.
func (m *IDMultiset) Equal(o *IDMultiset) bool { return *m == *o }

// idSums returns the select expressions of an sqlIDMultiset's two sums of
// column under seeds.
func idSums(q *queryBuilder, column string, seeds [2]int64) string {
	sums := make([]string, len(seeds))
	for i, seed := range seeds {
		sums[i] = fmt.Sprintf("coalesce(sum(hashtextextended(%s, %s)), 0)::text", column, q.arg(seed))
	}
	return strings.Join(sums, ", ")
}

// leavesChunk is how many arrivals one statement of LeavesOf joins with
// their leaves: a hash of them fits PostgreSQL's default work_mem.
const leavesChunk = 50_000

// firstLeafFrom returns the leaf of the tenant's first stored event (in
// arrival order) received from from on and before through: no leaf of an
// event received from from on comes before it (an event of the tenant's
// deleted behind audex's back and ingested again has two leaves: the
// later is its own). none when there is no such event.
func firstLeafFrom(ctx context.Context, db DBTX, tenantID string, from, through time.Time, none int64) (int64, error) {
	leaf := none
	err := db.QueryRow(ctx, `SELECT l.leaf_index FROM (SELECT tenant_id, id FROM events WHERE tenant_id = $1 AND received_at >= $2 AND received_at < $3
			ORDER BY received_at, id LIMIT 1) e
		JOIN log_leaves l ON l.tenant_id = e.tenant_id AND l.event_id = e.id AND l.deleted_by IS NULL
		ORDER BY l.leaf_index DESC LIMIT 1`, tenantID, from, through).Scan(&leaf)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("leaves of events: %w", translate(err))
	}
	return leaf, nil
}

// manifestLogPage is how many leaves WriteManifestLog reads per statement.
const manifestLogPage = 10_000

// WriteManifestLog writes to w the hashes of the leaves from the first of
// records to its last (32 bytes each, in leaf order), in the tenant's
// tree of size leaves, and returns the rest of what a manifest says of
// the log (audex.ManifestLog but its Checkpoint and Leaves): that range,
// the compact ranges around it, the deletion records of the range's
// leaves whose events audex deleted, with their inclusion proofs, and the
// leaves whose events are gone with no deletion record. A leaf of the
// range not in records whose event is stored is one the records' filter
// left out. records must not be empty, and size must be a signed
// checkpoint's. It reads one snapshot of the database.
//
// unrecorded names the deletions (purge ids, audit.event_deleted event
// ids) of leaves of the range whose deletion records are not in that
// tree: a purge still running, or a record not sealed yet. A manifest
// written with any cannot be verified; the same call after they are
// recorded and sealed returns none.
//
// leafIDs, when not nil, gets the event ids of records' leaves.
func WriteManifestLog(ctx context.Context, db DBTX, tenantID string, records LeafSet, size int64, w io.Writer, leafIDs *IDMultiset) (m audex.ManifestLog, unrecorded []string, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		// One snapshot: a purge that commits meanwhile must not make a
		// leaf read as stored look gone without a deletion record.
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`); err != nil {
			return err
		}
		m, unrecorded, err = writeManifestLog(ctx, tx, tenantID, records, size, w, leafIDs)
		return err
	})
	return m, unrecorded, err
}

func writeManifestLog(ctx context.Context, db DBTX, tenantID string, records LeafSet, size int64, w io.Writer, leafIDs *IDMultiset) (audex.ManifestLog, []string, error) {
	var m audex.ManifestLog
	m.FirstLeaf, m.EndLeaf = records.bounds()
	if m.EndLeaf == 0 {
		return m, nil, errors.New("manifest log: no record is a leaf")
	}
	var err error
	if m.FirstLeaf, m.EndLeaf, err = widenOverGone(ctx, db, tenantID, m.FirstLeaf, m.EndLeaf, size); err != nil {
		return m, nil, err
	}
	m.Missing = []audex.MissingLeaf{}
	var deleters []string
	var deleted int64
	for begin := m.FirstLeaf; begin < m.EndLeaf; begin += manifestLogPage {
		rows, err := db.Query(ctx, `SELECT leaf_index, event_id, substr(hashes, 1, 32), deleted_by FROM log_leaves
			WHERE tenant_id = $1 AND leaf_index >= $2 AND leaf_index < $3 ORDER BY leaf_index`,
			tenantID, begin, min(begin+manifestLogPage, m.EndLeaf))
		if err != nil {
			return m, nil, fmt.Errorf("manifest log: %w", translate(err))
		}
		var leaf int64
		var eventID string
		var hash []byte
		var deletedBy *string
		var gone []audex.MissingLeaf // not records, not deleted by audex
		next := begin
		_, err = pgx.ForEachRow(rows, []any{&leaf, &eventID, &hash, &deletedBy}, func() error {
			if leaf != next {
				return fmt.Errorf("leaf %d of %s is missing from the log's table", next, tenantID)
			}
			next++
			switch {
			case records.Has(leaf):
				if leafIDs != nil {
					leafIDs.Add(eventID)
				}
			case deletedBy != nil:
				deleted++
				if !slices.Contains(deleters, *deletedBy) {
					deleters = append(deleters, *deletedBy)
				}
			default:
				gone = append(gone, audex.MissingLeaf{LeafIndex: leaf, EventID: eventID})
			}
			_, err := w.Write(hash)
			return err
		})
		if err == nil && next != min(begin+manifestLogPage, m.EndLeaf) {
			err = fmt.Errorf("leaf %d of %s is missing from the log's table", next, tenantID)
		}
		if err != nil {
			return m, nil, fmt.Errorf("manifest log: %w", translate(err))
		}
		if len(gone) > 0 {
			missing, err := notStored(ctx, db, tenantID, gone)
			if err != nil {
				return m, nil, err
			}
			m.Missing = append(m.Missing, missing...)
		}
	}
	m.Excluded = m.EndLeaf - m.FirstLeaf - int64(records.count()) - deleted - int64(len(m.Missing))
	var unrecorded []string
	if m.Deletions, unrecorded, err = deletionRecords(ctx, db, tenantID, deleters, size); err != nil {
		return m, nil, err
	}
	r := newLogHashReader(ctx, db, tenantID)
	if m.Left, err = compactRange(r, 0, m.FirstLeaf); err != nil {
		return m, nil, fmt.Errorf("manifest log: %w", translate(err))
	}
	if m.Right, err = compactRange(r, m.EndLeaf, size); err != nil {
		return m, nil, fmt.Errorf("manifest log: %w", translate(err))
	}
	return m, unrecorded, nil
}

// widenOverGone widens the leaves [first, end) of a manifest over the
// leaves next to it whose events are gone without a deletion record, so
// that a silent deletion at either end of a run of records shows too.
func widenOverGone(ctx context.Context, db DBTX, tenantID string, first, end, size int64) (int64, int64, error) {
	const step = 64
	gone := func(from, to int64, desc bool) ([]int64, error) {
		order := "ASC"
		if desc {
			order = "DESC"
		}
		leaves, err := queryAll(ctx, db, "manifest log", pgx.RowTo[int64], `SELECT l.leaf_index FROM log_leaves l
			WHERE l.tenant_id = $1 AND l.leaf_index >= $2 AND l.leaf_index < $3 AND l.deleted_by IS NULL
				AND NOT EXISTS (SELECT 1 FROM event_ids i WHERE i.tenant_id = l.tenant_id AND i.id = l.event_id)
			ORDER BY 1 `+order, tenantID, from, to)
		return leaves, err
	}
	for first > 0 {
		leaves, err := gone(max(first-step, 0), first, true)
		if err != nil {
			return 0, 0, err
		}
		for _, l := range leaves {
			if l != first-1 {
				break
			}
			first--
		}
		if len(leaves) < step || first != leaves[len(leaves)-1] {
			break
		}
	}
	for end < size {
		leaves, err := gone(end, min(end+step, size), false)
		if err != nil {
			return 0, 0, err
		}
		for _, l := range leaves {
			if l != end {
				break
			}
			end++
		}
		if len(leaves) < step || end != leaves[len(leaves)-1]+1 {
			break
		}
	}
	return first, end, nil
}

// notStored returns the leaves of gone whose events the tenant no longer
// stores.
func notStored(ctx context.Context, db DBTX, tenantID string, gone []audex.MissingLeaf) ([]audex.MissingLeaf, error) {
	ids := make([]string, len(gone))
	for i, g := range gone {
		ids[i] = g.EventID
	}
	stored, err := queryAll(ctx, db, "manifest log", pgx.RowTo[string], `SELECT id FROM event_ids WHERE tenant_id = $1 AND id = ANY($2)`, tenantID, ids)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(gone, func(g audex.MissingLeaf) bool { return slices.Contains(stored, g.EventID) }), nil
}

// deletionRecords returns the deletion records that deleters (the values
// of log_leaves.deleted_by: purge ids, audit.event_deleted event ids)
// name, with their inclusion proofs in the tree of size leaves, and the
// deleters whose records are not in that tree (a purge still running, a
// record not sealed yet).
func deletionRecords(ctx context.Context, db DBTX, tenantID string, deleters []string, size int64) ([]audex.LogDeletion, []string, error) {
	records := []audex.LogDeletion{}
	var unrecorded []string
	for _, by := range deleters {
		// A purge's record is its audit.purge_completed or
		// audit.purge_failed; an audit.event_deleted is its own.
		var id string
		err := db.QueryRow(ctx, `SELECT id FROM events WHERE tenant_id = $1 AND target_type = 'purge' AND target_id = $2
				AND action IN ('audit.purge_completed', 'audit.purge_failed')
			UNION ALL SELECT id FROM event_ids WHERE tenant_id = $1 AND id = $2`, tenantID, by).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			unrecorded = append(unrecorded, by)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("deletion record: %w", translate(err))
		}
		proof, err := ProveLogInclusion(ctx, db, tenantID, id, size)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotSealed) || errors.Is(err, ErrNotInLog) {
			unrecorded = append(unrecorded, by)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		e, err := GetEvent(ctx, db, tenantID, id)
		if err != nil {
			return nil, nil, err
		}
		records = append(records, audex.LogDeletion{LeafIndex: proof.LeafIndex, Record: integrity.LeafData(&e), Hashes: proof.Hashes})
	}
	return records, unrecorded, nil
}

// compactRange returns the compact range of the leaves from begin to end
// (compact.RangeNodes' subtrees, left to right): each subtree's root is a
// stored hash of the tree.
func compactRange(r *logHashReader, begin, end int64) ([]tlog.Hash, error) {
	nodes := compact.RangeNodes(uint64(begin), uint64(end), nil)
	indexes := make([]int64, len(nodes))
	for i, n := range nodes {
		indexes[i] = tlog.StoredHashIndex(int(n.Level), int64(n.Index))
	}
	return r.ReadHashes(indexes)
}

// count returns how many leaves the set holds.
func (s LeafSet) count() int {
	n := 0
	for _, bits := range s {
		n += mathbits.OnesCount64(bits)
	}
	return n
}

// Empty reports whether the set holds no leaf.
func (s LeafSet) Empty() bool { _, end := s.bounds(); return end == 0 }
