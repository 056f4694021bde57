package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// insertSpread stores n events of tenant one second apart from start.
func insertSpread(t *testing.T, db store.DBTX, tenant string, n int, start time.Time) {
	t.Helper()
	for done := 0; done < n; {
		batch := make([]audex.Event, 0, min(1000, n-done))
		for range cap(batch) {
			batch = append(batch, newEvent(fmt.Sprintf("e%06d", done), start.Add(time.Duration(done)*time.Second)))
			done++
		}
		_, err := store.InsertEvents(t.Context(), db, tenant, batch)
		require.NoError(t, err)
	}
}

func TestStatementBudgets(t *testing.T) {
	t.Parallel()

	t.Run("SummaryOfTenThousandEmptyYearsCostsWhatItsEventsCost", func(t *testing.T) {
		t.Parallel()
		b := setupSummary(t)
		b.rollUp(t)
		since := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
		until := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		f := audex.Filter{Since: &since, Until: &until}
		// Walking every day of the span took 23-36 s; the days that hold
		// counts take milliseconds, well inside a budget of 3 s.
		got, err := store.SummarizeEvents(t.Context(), b.pool, b.tenant, f, 3*time.Second)
		require.NoError(t, err)
		want, err := store.ScanSummary(t.Context(), b.pool, b.tenant, f)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.EqualValues(t, 4000, got.TotalEvents)
	})

	t.Run("SummaryPastItsBudgetIsErrBudget", func(t *testing.T) {
		t.Parallel()
		pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		insertSpread(t, pool, tenant, 30_000, start)
		since, until, ok := start, start.AddDate(0, 1, 0), true
		// A filter other than time scans the events: 30,000 of them take
		// far more than a millisecond.
		f := audex.Filter{Since: &since, Until: &until, Success: &ok}
		_, err := store.SummarizeEvents(t.Context(), pool, tenant, f, time.Millisecond)
		require.ErrorIs(t, err, store.ErrBudget)
		_, err = store.SummarizeEvents(t.Context(), pool, tenant, f, time.Minute)
		require.NoError(t, err, "the same summary within a budget it fits")
	})
}

func TestStreamEvents(t *testing.T) {
	t.Parallel()

	t.Run("PagesAreHandedOverWithNoConnectionHeld", func(t *testing.T) {
		t.Parallel()
		pool, err := store.Open(t.Context(), storetest.DatabaseURL(t), store.MaxConns(1))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		tenant := storetest.NewTenant(t)
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		insertSpread(t, pool, tenant, 4500, start)
		since, until := start, start.AddDate(0, 1, 0)
		var got []string
		pages := 0
		err = store.StreamEvents(t.Context(), pool, nil, tenant, audex.Filter{Since: &since, Until: &until}, func(page []audex.Event) error {
			pages++
			// The pool's one connection is free while the page is
			// handed over: a slow reader holds nothing of the database.
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			if err := store.Ping(ctx, pool); err != nil {
				return err
			}
			for _, e := range page {
				got = append(got, e.ID)
			}
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, 3, pages)
		require.Len(t, got, 4500)
		for i, id := range got {
			require.Equal(t, fmt.Sprintf("e%06d", i), id)
		}
	})

	t.Run("EventsReceivedAfterItStartsAreLeftOut", func(t *testing.T) {
		t.Parallel()
		pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		insertSpread(t, pool, tenant, 2500, start)
		since, until := start, start.AddDate(0, 1, 0)
		n := 0
		var once sync.Once
		err := store.StreamEvents(t.Context(), pool, nil, tenant, audex.Filter{Since: &since, Until: &until}, func(page []audex.Event) error {
			once.Do(func() {
				// After the first page, later than everything streamed.
				_, err := store.InsertEvents(t.Context(), pool, tenant, []audex.Event{newEvent("late", start.Add(10*24*time.Hour))})
				require.NoError(t, err)
			})
			for _, e := range page {
				require.NotEqual(t, "late", e.ID)
			}
			n += len(page)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, 2500, n, "the stream holds the events acknowledged before it started")
	})
}

// newTestExport returns a queued export of tenant (not yet stored).
func newTestExport(tenant string) audex.Export {
	since := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	return audex.Export{ID: audex.NewID("exp"), TenantID: tenant, Format: "jsonl", Compression: "none", Since: since, Until: since.AddDate(0, 1, 0),
		Filters: []byte("{}"), Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: "/tmp"}, KeyPrefix: "x/", PartMaxRecords: 1000, PartMaxBytes: 1 << 20}
}

func TestExportFairness(t *testing.T) {
	t.Parallel()

	t.Run("ConcurrentCreationsKeepToTheTenantsCap", func(t *testing.T) {
		t.Parallel()
		pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
		var wg sync.WaitGroup
		results := make([]error, 8)
		for i := range results {
			wg.Go(func() {
				tx, err := pool.Begin(t.Context())
				if err != nil {
					results[i] = err
					return
				}
				defer tx.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
				e := newTestExport(tenant)
				if results[i] = store.CreateExport(t.Context(), tx, &e, 3); results[i] == nil {
					results[i] = tx.Commit(t.Context())
				}
			})
		}
		wg.Wait()
		created, refused := 0, 0
		for _, err := range results {
			if err == nil {
				created++
			} else {
				require.ErrorIs(t, err, store.ErrTooManyExports)
				refused++
			}
		}
		require.Equal(t, 3, created)
		require.Equal(t, 5, refused)
		other := newTestExport(storetest.NewTenant(t))
		require.NoError(t, store.CreateExport(t.Context(), pool, &other, 3), "another tenant's cap is its own")
	})

	t.Run("ATenantsExportsTakeTurnsWhileAnotherTenantsRun", func(t *testing.T) {
		t.Parallel()
		pool, tenant, neighbour := storetest.Pool(t), storetest.NewTenant(t), storetest.NewTenant(t)
		exports := []audex.Export{newTestExport(tenant), newTestExport(tenant), newTestExport(neighbour)}
		for i := range exports {
			require.NoError(t, store.CreateExport(t.Context(), pool, &exports[i], 0))
		}
		ttl := time.Minute
		_, err := store.AcquireExportLease(t.Context(), pool, exports[0].ID, "w1", 1, ttl, 1)
		require.NoError(t, err)
		_, err = store.AcquireExportLease(t.Context(), pool, exports[1].ID, "w2", 1, ttl, 1)
		require.ErrorIs(t, err, store.ErrTenantBusy, "the tenant's first export holds its turn")
		_, err = store.AcquireExportLease(t.Context(), pool, exports[2].ID, "w3", 1, ttl, 1)
		require.NoError(t, err, "another tenant's export runs meanwhile")
		_, err = store.AcquireExportLease(t.Context(), pool, exports[1].ID, "w2", 1, ttl, 2)
		require.NoError(t, err, "a cap of two lets it run")

		require.NoError(t, store.ReleaseExportLease(t.Context(), pool, exports[1].ID, "w2"))
		require.NoError(t, store.ReleaseExportLease(t.Context(), pool, exports[0].ID, "w1"))
		e, err := store.AcquireExportLease(t.Context(), pool, exports[1].ID, "w2", 1, ttl, 1)
		require.NoError(t, err, "its turn comes when the first gives the lease back")
		require.Equal(t, audex.ExportRunning, e.Status)
	})
}
