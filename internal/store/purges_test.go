package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// TestPurgeBatchesSplitTiesExactly purges in batches whose boundaries fall
// inside runs of events that occurred at the same instant: every event
// before the cut-off goes exactly once, with its event_ids row, and nothing
// at or after the cut-off nor of another tenant is touched.
func TestPurgeBatchesSplitTiesExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := storetest.Pool(t)
	tenant, other := storetest.NewTenant(t), storetest.NewTenant(t)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	cutoff := start.Add(time.Hour)
	seed := func(tenant string) {
		var events []audex.Event
		// 10 instants before the cut-off with 7 events each, then 5 at the
		// cut-off itself and 5 after it.
		for i := range 80 {
			at := start.Add(time.Duration(i/7) * 6 * time.Minute)
			switch {
			case i >= 75:
				at = cutoff.Add(time.Minute)
			case i >= 70:
				at = cutoff
			}
			events = append(events, audex.Event{ID: fmt.Sprintf("e%02d", 79-i), OccurredAt: at, Action: "doc.read",
				Actor: audex.Actor{ID: "a"}, Metadata: []byte("{}")})
		}
		_, err := store.InsertEvents(ctx, pool, tenant, events)
		require.NoError(t, err)
	}
	seed(tenant)
	seed(other)
	p := audex.Purge{TenantID: tenant, Before: cutoff}
	require.NoError(t, store.CreatePurge(ctx, pool, &p))
	want, err := store.CountEventsBefore(ctx, pool, tenant, cutoff)
	require.NoError(t, err)
	require.EqualValues(t, 70, want)

	var total int64
	var after *audex.Position
	batches := 0
	for {
		n, next, err := store.PurgeBatch(ctx, pool, p, after, 4, 0)
		require.NoError(t, err)
		total += n
		batches++
		if next == nil {
			break
		}
		require.EqualValues(t, 4, n, "a batch that goes on takes its whole limit")
		after = next
	}
	require.EqualValues(t, 70, total)
	require.Equal(t, 18, batches) // 17 of 4 and the last 2

	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		require.NoError(t, pool.QueryRow(ctx, query, args...).Scan(&n))
		return n
	}
	require.Equal(t, 0, count(`SELECT count(*) FROM events WHERE tenant_id = $1 AND occurred_at < $2`, tenant, cutoff))
	require.Equal(t, 10, count(`SELECT count(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2`, tenant, cutoff))
	require.Equal(t, 10, count(`SELECT count(*) FROM event_ids WHERE tenant_id = $1`, tenant))
	require.Equal(t, 80, count(`SELECT count(*) FROM events WHERE tenant_id = $1`, other))
	require.Equal(t, 80, count(`SELECT count(*) FROM event_ids WHERE tenant_id = $1`, other))
	got, err := store.GetPurge(ctx, pool, tenant, p.ID)
	require.NoError(t, err)
	require.EqualValues(t, 70, got.Deleted)
}

func TestCreateRetentionPurges(t *testing.T) {
	t.Parallel()

	// testBundle is a database of the test's own (a run creates purges
	// for every tenant with a policy) and a tenant with events 300, 250
	// and 100 days before morning.
	type testBundle struct {
		pool    *pgxpool.Pool
		tenant  string
		morning time.Time
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		b := &testBundle{pool: storetest.IsolatedPool(t), tenant: storetest.NewTenant(t), morning: time.Date(2026, 6, 10, 8, 0, 0, 0, time.UTC)}
		_, err := b.pool.Exec(context.Background(), `INSERT INTO tenants (id) VALUES ($1)`, b.tenant)
		require.NoError(t, err)
		var events []audex.Event
		for i, days := range []int{300, 250, 100} {
			events = append(events, audex.Event{ID: fmt.Sprintf("e%d", i), OccurredAt: b.morning.AddDate(0, 0, -days), Action: "doc.read",
				Actor: audex.Actor{ID: "a"}, Metadata: []byte("{}")})
		}
		_, err = store.InsertEvents(context.Background(), b.pool, b.tenant, events)
		require.NoError(t, err)
		return b
	}
	setPolicy := func(t *testing.T, b *testBundle, days int) {
		t.Helper()
		require.NoError(t, store.SetRetentionDays(context.Background(), b.pool, b.tenant, &days, audex.SystemActor()))
	}
	run := func(t *testing.T, b *testBundle, now time.Time) []audex.Purge {
		t.Helper()
		created, err := store.CreateRetentionPurges(context.Background(), b.pool, now)
		require.NoError(t, err)
		return created
	}

	t.Run("OnePurgeADayWhileThePolicyStays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setPolicy(t, b, 200)
		created := run(t, b, b.morning)
		require.Len(t, created, 1)
		require.Equal(t, b.morning.AddDate(0, 0, -200), created[0].Before)
		require.Equal(t, audex.PurgeByRetention, created[0].Reason)
		require.Empty(t, run(t, b, b.morning.Add(12*time.Hour)), "the same day again")
		next := run(t, b, b.morning.Add(24*time.Hour))
		require.Len(t, next, 1, "the next day")
		require.Equal(t, b.morning.AddDate(0, 0, -199), next[0].Before)
	})

	t.Run("AShorterPolicyAppliesAtTheNextRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setPolicy(t, b, 400)
		require.Len(t, run(t, b, b.morning), 1)
		setPolicy(t, b, 200)
		created := run(t, b, b.morning.Add(time.Minute))
		require.Len(t, created, 1, "a run earlier that day under the old policy does not lock the new one out")
		require.Equal(t, b.morning.Add(time.Minute).AddDate(0, 0, -200), created[0].Before)
		n, err := store.CountEventsBefore(context.Background(), b.pool, b.tenant, created[0].Before)
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "the purge takes the events of 300 and 250 days ago")
		require.Empty(t, run(t, b, b.morning.Add(2*time.Minute)), "and the run after it creates none")

		// Back to the longer policy the same day: its cut-off's day has
		// its purge already.
		setPolicy(t, b, 400)
		require.Empty(t, run(t, b, b.morning.Add(3*time.Minute)))
	})

	t.Run("APartitionDropsPurgeIsNoRunsPurge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setPolicy(t, b, 200)
		cut := b.morning.AddDate(0, 0, -200)
		_, err := b.pool.Exec(context.Background(), `INSERT INTO purges (id, tenant_id, status, reason, before, started_at, partition_name)
			VALUES ('prg_drop', $1, 'running', 'retention', $2, now(), 'events_2025_11')`, b.tenant, cut.Truncate(24*time.Hour))
		require.NoError(t, err)
		require.Len(t, run(t, b, b.morning), 1)
	})

	t.Run("TwoRunsAtOnceCreateOnePurge", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		setPolicy(t, b, 200)
		ctx := context.Background()
		// The first run's transaction holds its purge uncommitted while
		// the second run starts (as two worker processes would).
		first, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer first.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		created, err := store.CreateRetentionPurges(ctx, first, b.morning)
		require.NoError(t, err)
		require.Len(t, created, 1)
		second := make(chan []audex.Purge, 1)
		go func() {
			// No require here: this goroutine may outlive a failed test.
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				second <- nil
				return
			}
			defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
			created, err := store.CreateRetentionPurges(ctx, tx, b.morning.Add(time.Millisecond))
			if err != nil || tx.Commit(ctx) != nil {
				created = append(created, audex.Purge{ID: "failed"})
			}
			second <- created
		}()
		require.Eventually(t, func() bool {
			var waiting bool
			require.NoError(t, b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting))
			return waiting
		}, 10*time.Second, 10*time.Millisecond, "the second run waits for the first")
		require.NoError(t, first.Commit(ctx))
		require.Empty(t, <-second, "the second run finds the first one's purge")
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM purges WHERE tenant_id = $1`, b.tenant).Scan(&n))
		require.Equal(t, 1, n)
	})
}
