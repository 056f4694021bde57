package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// memoryTree is a tlog tree kept in memory from its records, the way
// tlog's own tests keep one: the independent reckoning that the stored
// log is checked against.
type memoryTree []tlog.Hash

func (m memoryTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

// treeOf returns the tree of the events' canonical encodings, in order.
func treeOf(t *testing.T, events []audex.Event) memoryTree {
	t.Helper()
	var m memoryTree
	for i := range events {
		hashes, err := tlog.StoredHashes(int64(i), events[i].AppendJSON(nil), m)
		require.NoError(t, err)
		m = append(m, hashes...)
	}
	return m
}

// inArrivalOrder returns every event of the tenant in arrival order.
func inArrivalOrder(t *testing.T, pool *pgxpool.Pool, tenant string) []audex.Event {
	t.Helper()
	events, err := store.ListArrivals(t.Context(), pool, tenant, audex.Filter{}, time.Time{}, time.Now().Add(time.Hour), nil, 1_000_000)
	require.NoError(t, err)
	return events
}

type logBundle struct {
	pool   *pgxpool.Pool
	tenant string
	keys   *integrity.Keys
}

func setupLog(t *testing.T) *logBundle {
	t.Helper()
	skey, err := integrity.GenerateKey("audex-test")
	require.NoError(t, err)
	keys, err := integrity.ParseKeys(skey)
	require.NoError(t, err)
	return &logBundle{pool: storetest.Pool(t), tenant: storetest.NewTenant(t), keys: keys}
}

// setupSealed is setupLog with 10 events of the tenant (a-0000 to a-0009)
// sealed, and their checkpoint.
func setupSealed(t *testing.T) (*logBundle, integrity.Checkpoint) {
	t.Helper()
	b := setupLog(t)
	b.ingest(t, b.tenant, "a", 10)
	b.sealAll(t, 1000)
	return b, b.latest(t)
}

// ingest stores n events of the tenant, some occurring long ago.
func (b *logBundle) ingest(t *testing.T, tenant, prefix string, n int) {
	t.Helper()
	batch := make([]audex.Event, n)
	for i := range batch {
		at := time.Now().Add(-time.Duration(i%3) * 24 * time.Hour)
		batch[i] = audex.Event{ID: fmt.Sprintf("%s-%04d", prefix, i), OccurredAt: at, Action: "doc.read",
			Actor: audex.Actor{ID: "alice"}, Metadata: []byte(`{"n":` + fmt.Sprint(i) + `,"note":"<&>\u2028"}`)}
	}
	_, err := store.InsertEvents(t.Context(), b.pool, tenant, batch)
	require.NoError(t, err)
}

func (b *logBundle) sealAll(t *testing.T, maxLeaves int) int64 {
	t.Helper()
	var total int64
	for more := true; more; {
		n, m, err := store.SealLog(t.Context(), b.pool, b.tenant, "audex-test", maxLeaves, b.keys.Sign)
		require.NoError(t, err)
		total, more = total+n, m
	}
	return total
}

// checkedManifest is what a manifest says of the tenant's log in its
// latest checkpoint (WriteManifestLog), the deletions it could not record
// and how many records there are, and the verifier's verdict on it from
// the records as stored.
type checkedManifest struct {
	log        audex.ManifestLog
	unrecorded []string
	records    int
	verdict    integrity.Verdict
}

// checkManifest works out the manifest of the tenant's events that
// records matches, received before through, and checks it as a verifier
// would.
func (b *logBundle) checkManifest(t *testing.T, records audex.Filter, through time.Time) checkedManifest {
	t.Helper()
	ctx := t.Context()
	size, note, err := store.LatestLogCheckpoint(ctx, b.pool, b.tenant)
	require.NoError(t, err)
	set, err := store.LeavesOf(ctx, b.pool, b.tenant, records, time.Time{}, through, size)
	require.NoError(t, err)
	var c checkedManifest
	var leaves bytes.Buffer
	c.log, c.unrecorded, err = store.WriteManifestLog(ctx, b.pool, b.tenant, set, size, &leaves, nil)
	require.NoError(t, err)
	c.log.Checkpoint = note
	check, err := integrity.NewLogCheck(c.log, &leaves, b.keys.VerifierKeys())
	require.NoError(t, err)
	stored, err := store.ListArrivals(ctx, b.pool, b.tenant, records, time.Time{}, through, nil, 1000)
	require.NoError(t, err)
	for i := range stored {
		check.Record(stored[i].ID, integrity.LeafData(&stored[i]))
	}
	c.records, c.verdict = len(stored), check.Verdict()
	return c
}

// latest returns the tenant's latest checkpoint, opened with the keys.
func (b *logBundle) latest(t *testing.T) integrity.Checkpoint {
	t.Helper()
	size, note, err := store.LatestLogCheckpoint(t.Context(), b.pool, b.tenant)
	require.NoError(t, err)
	c, err := integrity.OpenCheckpoint([]byte(note), b.keys.VerifierKeys())
	require.NoError(t, err)
	require.Equal(t, size, c.Size)
	require.Equal(t, integrity.Origin("audex-test", b.tenant), c.Origin)
	return c
}

// checkProof fetches e's inclusion proof against checkpoint c and returns
// what tlog.CheckRecord says of e's leaf.
func (b *logBundle) checkProof(t *testing.T, c integrity.Checkpoint, e audex.Event) error {
	t.Helper()
	p, err := store.ProveLogInclusion(t.Context(), b.pool, b.tenant, e.ID, c.Size)
	require.NoError(t, err, "event %s", e.ID)
	return tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.LeafIndex, tlog.RecordHash(integrity.LeafData(&e)))
}

func TestSealLog(t *testing.T) {
	t.Parallel()

	t.Run("TheTreeHoldsEveryEventOnceInArrivalOrder", func(t *testing.T) {
		t.Parallel()
		b := setupLog(t)
		b.ingest(t, b.tenant, "a", 50)
		b.ingest(t, storetest.NewTenant(t), "other", 20) // another tenant's stay out
		require.EqualValues(t, 50, b.sealAll(t, 1000))
		for i := range 6 {
			b.ingest(t, b.tenant, fmt.Sprintf("b%d", i), 5)
		}
		// In chunks of at most 7, cut between ingests (the events of one
		// received_at go together): a checkpoint after each ingest, one
		// tree.
		require.EqualValues(t, 30, b.sealAll(t, 7))
		require.Zero(t, b.sealAll(t, 1000), "nothing new, nothing sealed")

		events := inArrivalOrder(t, b.pool, b.tenant)
		require.Len(t, events, 80)
		want := treeOf(t, events)
		root, err := tlog.TreeHash(80, want)
		require.NoError(t, err)
		c := b.latest(t)
		require.EqualValues(t, 80, c.Size)
		require.Equal(t, root, c.Root, "the signed root is the tree of the events' canonical encodings")

		for _, i := range []int{0, 1, 49, 50, 63, 79} {
			p, err := store.ProveLogInclusion(t.Context(), b.pool, b.tenant, events[i].ID, c.Size)
			require.NoError(t, err)
			require.EqualValues(t, i, p.LeafIndex)
			leaf := tlog.RecordHash(integrity.LeafData(&events[i]))
			require.Equal(t, leaf, p.LeafHash)
			require.NoError(t, tlog.CheckRecord(p.Hashes, c.Size, c.Root, p.LeafIndex, leaf), "event %d", i)
		}

		// Every checkpoint is consistent with the latest.
		for _, from := range []int64{50, 55, 60, 65, 70, 75, 80} {
			_, note, err := store.LogCheckpointAt(t.Context(), b.pool, b.tenant, from)
			require.NoError(t, err, "a checkpoint at %d", from)
			old, err := integrity.OpenCheckpoint([]byte(note), b.keys.VerifierKeys())
			require.NoError(t, err)
			proof, err := store.ProveLogConsistency(t.Context(), b.pool, b.tenant, from, c.Size)
			require.NoError(t, err)
			require.NoError(t, tlog.CheckTree(proof, c.Size, c.Root, old.Size, old.Root), "from %d", from)
		}
	})

	t.Run("ASealOfManyPagesMakesTheSameTree", func(t *testing.T) {
		t.Parallel()
		b := setupLog(t)
		b.ingest(t, b.tenant, "a", 1000) // 1,000 leaves from an earlier seal
		b.sealAll(t, 100_000)
		for i := range 5 { // then 4,500 in one seal: three pages
			b.ingest(t, b.tenant, fmt.Sprintf("b%d", i), 900)
		}
		require.EqualValues(t, 4500, b.sealAll(t, 100_000))
		events := inArrivalOrder(t, b.pool, b.tenant)
		require.Len(t, events, 5500)
		root, err := tlog.TreeHash(5500, treeOf(t, events))
		require.NoError(t, err)
		c := b.latest(t)
		require.Equal(t, root, c.Root)
		for _, i := range []int{0, 999, 1000, 3047, 5499} {
			require.NoError(t, b.checkProof(t, c, events[i]), "event %d", i)
		}
	})

	t.Run("AProofOfAChangedEventFails", func(t *testing.T) {
		t.Parallel()
		b, c := setupSealed(t)
		e := inArrivalOrder(t, b.pool, b.tenant)[3]
		require.NoError(t, b.checkProof(t, c, e))
		e.Action = "doc.deleted"
		require.Error(t, b.checkProof(t, c, e))
	})

	t.Run("ARowInsertedBehindAudexsBackIsNamed", func(t *testing.T) {
		t.Parallel()
		b, c := setupSealed(t)
		// A copy of a sealed event under a new id, with its received_at,
		// written straight into the tables.
		storetest.ForgeEvent(t, b.pool, b.tenant, "a-0003", "forged-1")
		_, err := store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "forged-1", c.Size)
		require.ErrorIs(t, err, store.ErrNotInLog)
		b.sealAll(t, 1000)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "forged-1", c.Size)
		require.ErrorIs(t, err, store.ErrNotInLog, "a later seal does not take it either")
		b.ingest(t, b.tenant, "late", 1)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "late-0000", c.Size)
		require.ErrorIs(t, err, store.ErrNotSealed, "an event received since the last seal is only not sealed yet")
	})

	t.Run("ADeletedEventKeepsItsLeafAndProof", func(t *testing.T) {
		t.Parallel()
		b, c := setupSealed(t)
		e := inArrivalOrder(t, b.pool, b.tenant)[4]
		require.NoError(t, store.DeleteEvent(t.Context(), b.pool, b.tenant, e.ID, audex.Actor{ID: "ops", Type: new("user")}))
		require.NoError(t, b.checkProof(t, c, e))
		// The deletion's own audit event is the next leaf.
		b.sealAll(t, 1000)
		require.EqualValues(t, 11, b.latest(t).Size)
	})

	t.Run("WhatTheLogDoesNotHold", func(t *testing.T) {
		t.Parallel()
		b := setupLog(t)
		b.ingest(t, b.tenant, "a", 5)
		_, _, err := store.LatestLogCheckpoint(t.Context(), b.pool, b.tenant)
		require.ErrorIs(t, err, store.ErrNotFound, "no checkpoint before the first seal")
		b.sealAll(t, 1000)
		b.ingest(t, b.tenant, "late", 1)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "late-0000", 5)
		require.ErrorIs(t, err, store.ErrNotSealed)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "nope", 5)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, b.tenant, "a-0000", 4)
		require.ErrorIs(t, err, store.ErrNoCheckpoint)
		_, err = store.ProveLogConsistency(t.Context(), b.pool, b.tenant, 2, 5)
		require.ErrorIs(t, err, store.ErrNoCheckpoint)
		other := storetest.NewTenant(t)
		_, err = store.ProveLogInclusion(t.Context(), b.pool, other, "a-0000", 5)
		require.ErrorIs(t, err, store.ErrNoCheckpoint, "another tenant has no log")
	})

	t.Run("ConcurrentSealsMakeOneTree", func(t *testing.T) {
		t.Parallel()
		b := setupLog(t)
		var wg sync.WaitGroup
		for r := range 4 {
			wg.Go(func() {
				for i := range 5 {
					b.ingest(t, b.tenant, fmt.Sprintf("r%d-%d", r, i), 20)
					_, _, err := store.SealLog(t.Context(), b.pool, b.tenant, "audex-test", 1000, b.keys.Sign)
					require.NoError(t, err)
				}
			})
		}
		wg.Wait()
		b.sealAll(t, 1000)
		events := inArrivalOrder(t, b.pool, b.tenant)
		require.Len(t, events, 400)
		root, err := tlog.TreeHash(400, treeOf(t, events))
		require.NoError(t, err)
		c := b.latest(t)
		require.EqualValues(t, 400, c.Size)
		require.Equal(t, root, c.Root)
	})
}

func TestManifestLog(t *testing.T) {
	t.Parallel()
	b := setupLog(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	// e00 to e19, leaves 0 to 19 (one arrival, ordered by id); every fourth
	// is a doc.write that the records' filter leaves out; e05 occurred long
	// ago.
	batch := make([]audex.Event, 20)
	for i := range batch {
		at, action := now.Add(-time.Duration(i)*time.Minute), "doc.read"
		if i == 5 {
			at = now.Add(-240 * time.Hour)
		}
		if i%4 == 0 {
			action = "doc.write"
		}
		batch[i] = audex.Event{ID: fmt.Sprintf("e%02d", i), OccurredAt: at, Action: action, Actor: audex.Actor{ID: "alice"}, Metadata: []byte(`{}`)}
	}
	_, err := store.InsertEvents(ctx, b.pool, b.tenant, batch)
	require.NoError(t, err)
	b.sealAll(t, 1000)

	// e03 deleted one by one, e05 by a purge, e07 behind audex's back.
	require.NoError(t, store.DeleteEvent(ctx, b.pool, b.tenant, "e03", audex.Actor{ID: "ops", Type: new("user")}))
	p := audex.Purge{TenantID: b.tenant, Before: now.Add(-100 * time.Hour)}
	require.NoError(t, store.CreatePurge(ctx, b.pool, &p))
	p, _, err = store.StartPurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	n, _, err := store.PurgeBatch(ctx, b.pool, p, nil, 100, 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	// While the purge runs, and before the deletion of e03 is sealed,
	// neither deletion has a record in the log: the manifest names both.
	records := audex.Filter{Actions: []string{"doc.read"}}
	running := b.checkManifest(t, records, now.Add(time.Hour))
	require.Len(t, running.unrecorded, 2)
	require.Contains(t, running.unrecorded, p.ID)
	_, err = store.CompletePurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	for _, table := range []string{"events", "event_ids"} {
		_, err := b.pool.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND id = 'e07'`, b.tenant)
		require.NoError(t, err)
	}
	b.sealAll(t, 1000) // the deletion records become leaves 20 and 21
	var deletionRecords []audex.Event
	for _, action := range []string{"audit.event_deleted", "audit.purge_completed"} {
		e, err := store.ListEvents(ctx, b.pool, b.tenant, audex.Filter{Actions: []string{action}}, audex.OrderDesc, nil, 10)
		require.NoError(t, err)
		require.Len(t, e, 1)
		deletionRecords = append(deletionRecords, e[0])
	}
	for i, want := range [][][2]int64{{{3, 4}}, {{5, 6}}} {
		var meta struct{ Leaves [][2]int64 }
		require.NoError(t, json.Unmarshal(deletionRecords[i].Metadata, &meta))
		require.Equal(t, want, meta.Leaves, "%s lists the leaves it deleted", deletionRecords[i].Action)
	}

	size, _, err := store.LatestLogCheckpoint(ctx, b.pool, b.tenant)
	require.NoError(t, err)
	require.EqualValues(t, 22, size)
	c := b.checkManifest(t, records, now.Add(time.Hour))
	require.Empty(t, c.unrecorded)
	m := c.log
	require.EqualValues(t, 1, m.FirstLeaf, "e00 is no record")
	require.EqualValues(t, 20, m.EndLeaf)
	require.Equal(t, []audex.MissingLeaf{{LeafIndex: 7, EventID: "e07"}}, m.Missing)
	require.EqualValues(t, 4, m.Excluded, "e04, e08, e12, e16")
	require.Len(t, m.Deletions, 2)

	// The verifier's reckoning, from the records alone.
	require.Equal(t, 12, c.records, "15 doc.read events, less e03, e05 and e07")
	v := c.verdict
	require.Equal(t, v.Records, v.Matched)
	require.EqualValues(t, 4, v.Excluded)
	require.Len(t, v.Deleted, 2)
	require.Equal(t, []string{`leaf 7 (event "e07") is MISSING: its event was deleted without a deletion record`}, v.Problems)
}

// TestFailedPurgeIsADeletionRecord checks that a purge that fails after
// deleting some events records audit.purge_failed, listing their leaves,
// and that a manifest of the leaves around them verifies with it.
func TestFailedPurgeIsADeletionRecord(t *testing.T) {
	t.Parallel()
	b := setupLog(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	// e00 to e09 in one arrival (leaves in id order): the odd ones
	// occurred long ago.
	batch := make([]audex.Event, 10)
	for i := range batch {
		at := now.Add(-time.Duration(i) * time.Minute)
		if i%2 == 1 {
			at = now.Add(-240 * time.Hour)
		}
		batch[i] = audex.Event{ID: fmt.Sprintf("e%02d", i), OccurredAt: at, Action: "doc.read", Actor: audex.Actor{ID: "alice"}, Metadata: []byte(`{}`)}
	}
	_, err := store.InsertEvents(ctx, b.pool, b.tenant, batch)
	require.NoError(t, err)
	b.sealAll(t, 1000)
	p := audex.Purge{TenantID: b.tenant, Before: now.Add(-100 * time.Hour)}
	require.NoError(t, store.CreatePurge(ctx, b.pool, &p))
	p, _, err = store.StartPurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	n, next, err := store.PurgeBatch(ctx, b.pool, p, nil, 3, 0)
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	require.NotNil(t, next, "two are left")
	require.NoError(t, store.FailPurge(ctx, b.pool, p.ID, "gave up"))
	b.sealAll(t, 1000)

	failed, err := store.ListEvents(ctx, b.pool, b.tenant, audex.Filter{Actions: []string{"audit.purge_failed"}}, audex.OrderDesc, nil, 10)
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.JSONEq(t, `{"before": "`+p.Before.Format(time.RFC3339Nano)+`", "deleted": 3, "reason": "request", "error": "gave up",
		"leaves": [[1, 2], [3, 4], [5, 6]]}`, string(failed[0].Metadata))

	c := b.checkManifest(t, audex.Filter{Since: new(now.Add(-time.Hour)), Actions: []string{"doc.read"}}, now.Add(time.Hour))
	require.Empty(t, c.unrecorded)
	v := c.verdict
	require.Empty(t, v.Problems)
	require.EqualValues(t, 5, v.Matched)
	require.Equal(t, map[string]int64{failed[0].ID + " (audit.purge_failed)": 3}, v.Deleted)
	require.EqualValues(t, 1, v.Excluded, "e07, not purged (e09 is past the last record)")
}

// TestLeavesOfInChunks checks that LeavesOf, joining a few arrivals at a
// time with the leaves between theirs, finds exactly the leaves that one
// join of all the events with the whole log finds: for every chunk size,
// with events deleted one by one and by a purge, a time filter, and
// arrival bounds that fall between and inside ingests.
func TestLeavesOfInChunks(t *testing.T) {
	t.Parallel()
	b := setupLog(t)
	ctx := t.Context()
	var arrived []time.Time // each ingest's received_at
	for i := range 6 {
		b.ingest(t, b.tenant, fmt.Sprintf("b%d", i), 7)
		var at time.Time
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT max(received_at) FROM events WHERE tenant_id = $1`, b.tenant).Scan(&at))
		arrived = append(arrived, at)
	}
	require.NoError(t, store.DeleteEvent(ctx, b.pool, b.tenant, "b1-0003", audex.Actor{ID: "ops", Type: new("user")}))
	b.sealAll(t, 1000)
	p := audex.Purge{TenantID: b.tenant, Before: time.Now().Add(-36 * time.Hour)}
	require.NoError(t, store.CreatePurge(ctx, b.pool, &p))
	p, _, err := store.StartPurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	_, _, err = store.PurgeBatch(ctx, b.pool, p, nil, 5, 0) // some of the events of two days ago
	require.NoError(t, err)
	b.ingest(t, b.tenant, "late", 4) // not sealed: past the tree
	size, _, err := store.LatestLogCheckpoint(ctx, b.pool, b.tenant)
	require.NoError(t, err)

	through := time.Now().Add(time.Hour)
	for _, c := range []struct {
		name     string
		f        audex.Filter
		from, to time.Time
	}{
		{"everything", audex.Filter{}, time.Time{}, through},
		{"a day", audex.Filter{Since: new(time.Now().Add(-30 * time.Hour))}, time.Time{}, through},
		{"from the third ingest", audex.Filter{}, arrived[2], through},
		{"the second to the fifth ingest", audex.Filter{Since: new(time.Now().Add(-30 * time.Hour))}, arrived[1], arrived[4]},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := b.joinedLeaves(t, c.f, c.from, c.to, size)
			require.NotEmpty(t, want)
			for _, chunk := range []int{1, 2, 3, 7, 10, 1000} {
				set, err := store.LeavesOfInChunks(ctx, b.pool, b.tenant, c.f, c.from, c.to, size, chunk)
				require.NoError(t, err)
				require.Equal(t, want, leavesIn(set, size), "chunks of %d", chunk)
			}
		})
	}
}

// joinedLeaves returns the leaves, below size, of the tenant's events that
// f (a filter of Since, Until and Actions at most) matches received from
// from on and before to: one plain join of the events with the log.
func (b *logBundle) joinedLeaves(t *testing.T, f audex.Filter, from, to time.Time, size int64) []int64 {
	t.Helper()
	var q strings.Builder
	q.WriteString(`SELECT l.leaf_index FROM events e JOIN log_leaves l ON l.tenant_id = e.tenant_id AND l.event_id = e.id
		WHERE e.tenant_id = $1 AND e.received_at >= $2 AND e.received_at < $3 AND l.deleted_by IS NULL AND l.leaf_index < $4`)
	args := []any{b.tenant, from, to, size}
	where := func(cond string, arg any) {
		args = append(args, arg)
		fmt.Fprintf(&q, " AND "+cond, len(args))
	}
	if f.Since != nil {
		where("e.occurred_at >= $%d", *f.Since)
	}
	if f.Until != nil {
		where("e.occurred_at < $%d", *f.Until)
	}
	if f.Actions != nil {
		where("e.action = ANY($%d)", f.Actions)
	}
	rows, err := b.pool.Query(t.Context(), q.String()+` ORDER BY 1`, args...)
	require.NoError(t, err)
	want, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return want
}

// leavesIn lists the leaves of set below size.
func leavesIn(set store.LeafSet, size int64) []int64 {
	var leaves []int64
	for i := range size {
		if set.Has(i) {
			leaves = append(leaves, i)
		}
	}
	return leaves
}

// TestLeavesByTime checks that the leaves of a selection by time alone
// are found from the log alone, the very leaves that the join finds, and
// that whatever sets the log's leaves apart from the events' (an event
// deleted or inserted behind audex's back, both at once, a leaf without
// its time) or a filter of more than time makes it give way to the join,
// which LeavesOf then runs. An export's guess (LeavesOfTimes), checked
// by the event ids that WriteManifestLog tallies against the records',
// holds in the same cases, and there gives the same leaves.
func TestLeavesByTime(t *testing.T) {
	t.Parallel()
	b := setupLog(t)
	ctx := t.Context()
	b.ingest(t, b.tenant, "a", 12) // occurring now, a day ago and two days ago
	b.sealAll(t, 1000)
	require.NoError(t, store.DeleteEvent(ctx, b.pool, b.tenant, "a-0004", audex.Actor{ID: "ops", Type: new("user")}))
	b.ingest(t, b.tenant, "b", 6)
	b.sealAll(t, 1000)
	size, _, err := store.LatestLogCheckpoint(ctx, b.pool, b.tenant)
	require.NoError(t, err)
	through := time.Now().Add(time.Hour)
	aDay, now := time.Now().Add(-30*time.Hour), time.Now().Add(-time.Hour)
	filters := map[string]audex.Filter{
		"everything":               {},
		"since a day ago":          {Since: &aDay},
		"a day, until an hour ago": {Since: &aDay, Until: &now},
		"received before through":  {ReceivedBefore: &through},
		"an action":                {Actions: []string{"doc.read"}},
	}
	check := func(t *testing.T, byLog map[string]bool) {
		t.Helper()
		for name, f := range filters {
			want := b.joinedLeaves(t, f, time.Time{}, through, size)
			require.NotEmpty(t, want, name)
			set, found, err := store.LeavesByTime(ctx, b.pool, b.tenant, f, time.Time{}, through, 0, size, size)
			require.NoError(t, err)
			require.Equal(t, byLog[name], found, name)
			if found {
				require.Equal(t, want, leavesIn(set, size), name)
			} else {
				require.Empty(t, leavesIn(set, size), "%s: nothing added when not found", name)
			}
			set, err = store.LeavesOf(ctx, b.pool, b.tenant, f, time.Time{}, through, size)
			require.NoError(t, err)
			require.Equal(t, want, leavesIn(set, size), "%s: LeavesOf", name)

			guess, err := store.LeavesOfTimes(ctx, b.pool, b.tenant, f, time.Time{}, through, size)
			if !store.SelectsByTime(f) {
				require.Error(t, err, name)
				continue
			}
			require.NoError(t, err)
			records := store.NewIDMultiset()
			stored, err := store.ListArrivals(ctx, b.pool, b.tenant, f, time.Time{}, through, nil, 1000)
			require.NoError(t, err)
			for _, e := range stored {
				records.Add(e.ID)
			}
			leafIDs := records.Like()
			_, _, err = store.WriteManifestLog(ctx, b.pool, b.tenant, guess, size, io.Discard, leafIDs)
			require.NoError(t, err)
			require.Equal(t, byLog[name], records.Equal(leafIDs), "%s: the guess's ids are the records'", name)
			if byLog[name] {
				require.Equal(t, want, leavesIn(guess, size), "%s: LeavesOfTimes", name)
			}
		}
	}
	t.Run("as sealed", func(t *testing.T) {
		check(t, map[string]bool{"everything": true, "since a day ago": true, "a day, until an hour ago": true, "received before through": true})
	})
	t.Run("a leaf without its time", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, `UPDATE log_leaves SET occurred_at = NULL WHERE tenant_id = $1 AND leaf_index = 1`, b.tenant)
		require.NoError(t, err)
		check(t, map[string]bool{"everything": true, "received before through": true})
		_, err = b.pool.Exec(ctx, `UPDATE log_leaves l SET occurred_at = e.occurred_at FROM events e
			WHERE l.tenant_id = $1 AND l.leaf_index = 1 AND e.tenant_id = l.tenant_id AND e.id = l.event_id`, b.tenant)
		require.NoError(t, err)
		check(t, map[string]bool{"everything": true, "since a day ago": true, "a day, until an hour ago": true, "received before through": true})
	})
	t.Run("deleted behind audex's back", func(t *testing.T) {
		for _, table := range []string{"events", "event_ids"} {
			_, err := b.pool.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND id = 'a-0003'`, b.tenant)
			require.NoError(t, err)
		}
		// a-0003 occurred now: the day that ends an hour ago is as sealed.
		check(t, map[string]bool{"a day, until an hour ago": true})
	})
	t.Run("and one inserted behind its back", func(t *testing.T) {
		// As many events as leaves again: only the ids tell them apart.
		b.ingest(t, b.tenant, "forged", 1)
		check(t, map[string]bool{"a day, until an hour ago": true})
	})
}

// TestIDMultiset checks that two tallies of ids are equal when they hold
// the same ids in any order, and not when an id differs, is given twice
// for another, or the seeds differ.
func TestIDMultiset(t *testing.T) {
	t.Parallel()
	tally := func(m *store.IDMultiset, ids ...string) *store.IDMultiset {
		for _, id := range ids {
			m.Add(id)
		}
		return m
	}
	a := tally(store.NewIDMultiset(), "e1", "e2", "e3")
	require.True(t, a.Equal(tally(a.Like(), "e3", "e1", "e2")))
	require.False(t, a.Equal(tally(a.Like(), "e1", "e2", "e4")))
	require.False(t, a.Equal(tally(a.Like(), "e1", "e2", "e2")))
	require.False(t, a.Equal(tally(a.Like(), "e1", "e2")))
	require.False(t, a.Equal(tally(store.NewIDMultiset(), "e1", "e2", "e3")), "other seeds")
}
