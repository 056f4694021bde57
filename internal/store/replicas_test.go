package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// replicaSetup is a private primary, a streaming replica of it started
// from a base backup, and Reads over them.
type replicaSetup struct {
	primary, standby *storetest.Server
	pool             *pgxpool.Pool
	reads            *store.Reads
}

func newReplicaSetup(t *testing.T, maxLag time.Duration) *replicaSetup {
	t.Helper()
	s := &replicaSetup{primary: storetest.NewServer(t)}
	s.standby = s.primary.NewStandby(t)
	var err error
	if s.pool, err = store.Open(t.Context(), s.primary.URL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pool.Close)
	if s.reads, err = store.OpenReads(t.Context(), s.pool, []string{s.standby.URL}, maxLag, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.reads.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.reads.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// waitServing waits until the replica's checks find it usable (or not).
func (s *replicaSetup) waitServing(t *testing.T, want bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		states := s.reads.Replicas()
		if len(states) != 1 {
			t.Fatalf("replicas %+v, want one", states)
		}
		if states[0].Usable == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica usable = %v after 20 s, want %v", states[0].Usable, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *replicaSetup) ingest(t *testing.T, tenant string, n, round int) {
	t.Helper()
	events := make([]audex.Event, n)
	now := time.Now().UTC()
	for i := range events {
		events[i] = audex.Event{ID: fmt.Sprintf("r%03d-%04d", round, i), OccurredAt: now.Add(-time.Duration(i) * time.Millisecond),
			Action: "doc.read", Actor: audex.Actor{ID: "u1"}}
	}
	if _, err := store.InsertEvents(t.Context(), s.pool, tenant, events); err != nil {
		t.Fatal(err)
	}
}

func countOn(t *testing.T, db store.DBTX, tenant string) int {
	t.Helper()
	n, err := store.CountEvents(t.Context(), db, tenant, audex.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func TestReadsFromAReplica(t *testing.T) {
	t.Parallel()
	s := newReplicaSetup(t, 2*time.Second)
	tenant := storetest.NewTenant(t)
	s.waitServing(t, true)

	// Every read after a write sees it once ReaderAfter returns: the
	// replica has replayed past the primary's position (the primary
	// commits asynchronously, so without the wait the newest rows are
	// often not there yet).
	total := 0
	for round := range 30 {
		s.ingest(t, tenant, 200, round)
		total += 200
		db, src, err := s.reads.ReaderAfter(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if src.Replica == "" {
			t.Fatalf("round %d: the primary served, want the replica (fallbacks %v)", round, s.reads.Fallbacks())
		}
		if got := countOn(t, db, tenant); got != total {
			t.Fatalf("round %d: the replica holds %d events after ReaderAfter, want %d", round, got, total)
		}
	}
	db, src := s.reads.Reader()
	if src.Replica == "" || db == store.DBTX(s.pool) {
		t.Fatalf("Reader chose the primary with a usable replica: %+v", src)
	}

	// A replica that is down is skipped: the primary serves, counted.
	s.standby.Stop(t)
	s.waitServing(t, false)
	db, src = s.reads.Reader()
	if src.Replica != "" || countOn(t, db, tenant) != total {
		t.Fatalf("with the replica down Reader chose %+v", src)
	}
	if db, src, err := s.reads.ReaderAfter(t.Context()); err != nil || src.Replica != "" || countOn(t, db, tenant) != total {
		t.Fatalf("with the replica down ReaderAfter chose %+v (%v)", src, err)
	}
	if n := s.reads.Fallbacks()[store.FallbackNoReplica]; n < 2 {
		t.Fatalf("fallbacks %v, want at least 2 for %q", s.reads.Fallbacks(), store.FallbackNoReplica)
	}

	// Back up, it serves again, and catches up with what it missed.
	s.ingest(t, tenant, 100, 100)
	total += 100
	s.standby.Start(t)
	s.waitServing(t, true)
	db, src, err := s.reads.ReaderAfter(t.Context())
	if err != nil || src.Replica == "" {
		t.Fatalf("after restart ReaderAfter chose %+v (%v)", src, err)
	}
	if got := countOn(t, db, tenant); got != total {
		t.Fatalf("the restarted replica holds %d events, want %d", got, total)
	}
}

func TestReadsSkipAReplicaThatLags(t *testing.T) {
	t.Parallel()
	s := newReplicaSetup(t, 500*time.Millisecond)
	tenant := storetest.NewTenant(t)
	s.waitServing(t, true)
	s.ingest(t, tenant, 10, 0)

	// Replay paused: the replica falls behind what the primary commits.
	replica, err := store.Open(t.Context(), s.standby.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if _, err := replica.Exec(t.Context(), `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	s.ingest(t, tenant, 10, 1)

	// An export's read waits at most read_max_lag for the replica, then
	// reads from the primary, which holds every event.
	started := time.Now()
	db, src, err := s.reads.ReaderAfter(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if src.Replica != "" || countOn(t, db, tenant) != 20 {
		t.Fatalf("ReaderAfter with replay paused chose %+v", src)
	}
	if waited := time.Since(started); waited < 500*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("ReaderAfter waited %s for the paused replica, want about read_max_lag (500ms)", waited)
	}
	if n := s.reads.Fallbacks()[store.FallbackReplicaBehind]; n != 1 {
		t.Fatalf("fallbacks %v, want 1 for %q", s.reads.Fallbacks(), store.FallbackReplicaBehind)
	}
	// The checks find it too far behind, and lists go to the primary.
	s.waitServing(t, false)
	if _, src := s.reads.Reader(); src.Replica != "" {
		t.Fatalf("Reader chose a replica %s behind", src.Lag)
	}

	if _, err := replica.Exec(t.Context(), `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	s.waitServing(t, true)
	db, src, err = s.reads.ReaderAfter(t.Context())
	if err != nil || src.Replica == "" || countOn(t, db, tenant) != 20 {
		t.Fatalf("after replay resumed ReaderAfter chose %+v (%v)", src, err)
	}
}

func TestReadsRefuseAPrimary(t *testing.T) {
	t.Parallel()
	pool := storetest.Pool(t)
	var log logtest.Buffer
	// A read URL that names a primary (a mistake, or a replica that was
	// promoted) is never read from: its data may have diverged.
	reads, err := store.OpenReads(t.Context(), pool, []string{storetest.DatabaseURL(t)}, time.Second, slog.New(slog.NewJSONHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	if states := reads.Replicas(); len(states) != 1 || states[0].Usable {
		t.Fatalf("replicas %+v, want one unusable", states)
	}
	if _, src := reads.Reader(); src.Replica != "" {
		t.Fatalf("Reader chose %+v, a primary named as a replica", src)
	}
	if !strings.Contains(log.String(), `"msg":"read_replica_skipped"`) || !strings.Contains(log.String(), "is not a standby") {
		t.Fatalf("no log line says why the replica is skipped:\n%s", log.String())
	}
}
