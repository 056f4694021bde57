package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func newEvent(id string, at time.Time) audex.Event {
	return audex.Event{ID: id, OccurredAt: at, Action: "doc.read", Actor: audex.Actor{ID: "alice"}, Metadata: []byte("{}")}
}

func TestInsertEvents(t *testing.T) {
	t.Parallel()

	t.Run("ConcurrentInsertsOfOneIDStoreItOnce", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		var wg sync.WaitGroup
		var mu sync.Mutex
		storedCount := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				batch := make([]audex.Event, 20)
				for i := range batch {
					batch[i] = newEvent(fmt.Sprintf("id-%d", i), now)
				}
				stored, err := store.InsertEvents(t.Context(), pool, tenant, batch)
				require.NoError(t, err)
				mu.Lock()
				defer mu.Unlock()
				for _, s := range stored {
					if s {
						storedCount++
					}
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 20, storedCount)
		var rows int
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1`, tenant).Scan(&rows))
		require.Equal(t, 20, rows)
	})

	t.Run("ABatchWithStoredOrRepeatedIDsStoresOnlyItsNewOnes", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		now := time.Now().UTC().Truncate(time.Microsecond)
		stored, err := store.InsertEvents(t.Context(), pool, tenant, []audex.Event{newEvent("a", now), newEvent("b", now)})
		require.NoError(t, err)
		require.Equal(t, []bool{true, true}, stored)

		// "a" is stored, "c" is given twice: the batch goes by the dedupe.
		batch := []audex.Event{newEvent("c", now), newEvent("a", now), newEvent("d", now), newEvent("c", now)}
		batch[1].Action, batch[3].Action = "doc.changed", "doc.changed"
		stored, err = store.InsertEvents(t.Context(), pool, tenant, batch)
		require.NoError(t, err)
		require.Equal(t, []bool{true, false, true, false}, stored)
		require.False(t, batch[0].ReceivedAt.IsZero())
		require.True(t, batch[1].ReceivedAt.IsZero(), "a duplicate is not given a received_at")

		rows, err := pool.Query(t.Context(), `SELECT id || ':' || action FROM events WHERE tenant_id = $1 ORDER BY id`, tenant)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Equal(t, []string{"a:doc.read", "b:doc.read", "c:doc.read", "d:doc.read"}, ids, "the first stored copy of an id wins")
		var counted int64
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT coalesce(sum(events), 0) FROM event_values WHERE tenant_id = $1 AND kind = $2`, tenant, store.ValueAction).Scan(&counted))
		require.EqualValues(t, 4, counted, "the filters' counts hold the stored events only")

		// A batch of new ids alone is stored whole.
		stored, err = store.InsertEvents(t.Context(), pool, tenant, []audex.Event{newEvent("e", now), newEvent("f", now)})
		require.NoError(t, err)
		require.Equal(t, []bool{true, true}, stored)
	})

	t.Run("NewPartitionTakesOverItsRowsFromTheDefault", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		// A month five years from now has no partition, so the row lands
		// in the default partition until its month gets one.
		now := time.Now().UTC()
		at := time.Date(now.Year()+5, now.Month(), 14, 10, 0, 0, 0, time.UTC)
		_, err := store.InsertEvents(t.Context(), pool, tenant, []audex.Event{newEvent("far", at)})
		require.NoError(t, err)
		partitionOf := func() string {
			var name string
			require.NoError(t, pool.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM events WHERE tenant_id = $1 AND id = 'far'`, tenant).Scan(&name))
			return name
		}
		require.Equal(t, "events_default", partitionOf())

		require.NoError(t, store.EnsureEventPartitions(t.Context(), pool, at))
		require.Equal(t, at.Format("events_2006_01"), partitionOf())
		e, err := store.GetEvent(t.Context(), pool, tenant, "far")
		require.NoError(t, err)
		require.Equal(t, at, e.OccurredAt)
		require.NoError(t, store.EnsureEventPartitions(t.Context(), pool, at), "idempotent")
	})

	t.Run("GetOfAnotherTenantsEventIsNotFound", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		owner, other := storetest.NewTenant(t), storetest.NewTenant(t)
		_, err := store.InsertEvents(t.Context(), pool, owner, []audex.Event{newEvent("mine", time.Now().UTC())})
		require.NoError(t, err)
		_, err = store.GetEvent(t.Context(), pool, other, "mine")
		require.ErrorIs(t, err, store.ErrNotFound)
	})
}

// BenchmarkInsertEvents measures InsertEvents on batches of 500 new
// events, one caller at a time; ns/event is the cost of one event,
// mostly the database's.
func BenchmarkInsertEvents(b *testing.B) {
	pool := storetest.Pool(b)
	tenant := storetest.NewTenant(b)
	at := time.Now().UTC().Truncate(time.Microsecond)
	batch := make([]audex.Event, 500)
	n := 0
	for b.Loop() {
		for i := range batch {
			n++
			batch[i] = newEvent(fmt.Sprintf("evt_%012d", n), at.Add(-time.Duration(n)*time.Millisecond))
			batch[i].Actor.ID = fmt.Sprintf("actor-%d", n%97)
		}
		if _, err := store.InsertEvents(b.Context(), pool, tenant, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}

func TestAPIBusy(t *testing.T) {
	t.Parallel()
	// Its own database: other tests' API sessions must not count.
	url := storetest.IsolatedDatabaseURL(t)
	open := func(opts ...store.OpenOption) *pgxpool.Pool {
		p, err := store.Open(t.Context(), url, opts...)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	api, background := open(store.ServingRequests()), open()
	busy := func() bool {
		b, err := store.APIBusy(t.Context(), background)
		require.NoError(t, err)
		return b
	}
	sleep := func(p *pgxpool.Pool) {
		go func() { _, _ = p.Exec(context.WithoutCancel(t.Context()), `SELECT pg_sleep(1)`) }()
	}
	require.False(t, busy(), "nothing runs")
	sleep(background)
	time.Sleep(200 * time.Millisecond)
	require.False(t, busy(), "background work does not count")
	sleep(api)
	require.Eventually(t, busy, 800*time.Millisecond, 20*time.Millisecond, "a statement of the API counts")
}

func TestWaitForIngests(t *testing.T) {
	t.Parallel()
	pool := storetest.Pool(t)
	tenant := storetest.NewTenant(t)
	now := time.Now().UTC().Truncate(time.Microsecond)

	// An ingest under way: its transaction holds the tenant's ingest lock.
	slow, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer slow.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck // committed below
	_, err = store.InsertEvents(t.Context(), slow, tenant, []audex.Event{newEvent("slow", now)})
	require.NoError(t, err)

	at, waited := time.Time{}, make(chan error, 1)
	go func() {
		var err error
		at, err = store.IngestBarrier(t.Context(), pool, tenant)
		waited <- err
	}()
	require.Eventually(t, func() bool { return storetest.AtIngestBarrier(t, pool) },
		10*time.Second, 5*time.Millisecond, "the barrier waits for the ingest under way")

	// While it waits, the tenant's other ingests and self-audit events go
	// through: the barrier does not stand in their way. (Of another
	// action: ingests of one action take turns on its count.)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	meanwhile := newEvent("meanwhile", now)
	meanwhile.Action = "doc.write"
	stored, err := store.InsertEvents(ctx, pool, tenant, []audex.Event{meanwhile})
	require.NoError(t, err, "an ingest that starts while the barrier waits is not held")
	require.Equal(t, []bool{true}, stored)
	require.NoError(t, store.RecordAuditEvent(ctx, pool, tenant, audex.Event{Action: "audit.test", Actor: audex.Actor{ID: "admin"}}))
	// An ingest that takes the lock after the barrier began is not waited
	// for: it receives its events after the barrier's time.
	later, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer later.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck // rolled back at the end
	laterEvent := newEvent("later", now)
	laterEvent.Action = "doc.share"
	_, err = store.InsertEvents(t.Context(), later, tenant, []audex.Event{laterEvent})
	require.NoError(t, err)
	select {
	case err := <-waited:
		t.Fatalf("the barrier returned (%v) while the ingest under way had not ended", err)
	case <-time.After(100 * time.Millisecond):
	}

	require.NoError(t, slow.Commit(t.Context()))
	select {
	case err := <-waited:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the barrier still waits after the ingest under way ended")
	}
	var received time.Time
	require.NoError(t, later.QueryRow(t.Context(), `SELECT received_at FROM events WHERE tenant_id = $1 AND id = 'later'`, tenant).Scan(&received))
	require.True(t, received.After(at), "an ingest not waited for receives after the barrier (%s, barrier %s)", received, at)
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT received_at FROM events WHERE tenant_id = $1 AND id = 'slow'`, tenant).Scan(&received))
	require.True(t, received.Before(at), "the ingest waited for received before the barrier")

	// A transaction that holds the lock itself does not wait for itself.
	own, err := pool.Begin(t.Context())
	require.NoError(t, err)
	defer own.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck // rolled back at the end
	_, err = store.InsertEvents(t.Context(), own, tenant, []audex.Event{newEvent("own", now)})
	require.NoError(t, err)
	require.NoError(t, later.Rollback(t.Context()))
	require.NoError(t, store.WaitForIngests(ctx, own, tenant))
}
