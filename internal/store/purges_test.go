package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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
