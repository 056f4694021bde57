package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/storetest"
)

// dailyCount is one day's number of a tenant's events (of one action, or
// of all for "").
type dailyCount struct {
	Day    string
	Action string
	Events int64
}

// summaryCounts returns the tenant's daily counts, in total and by action,
// as the summary holds them.
func (b *jobsBundle) summaryCounts(t *testing.T, tenant string) []dailyCount {
	t.Helper()
	return b.dailyCounts(t, `SELECT day::text, value, events FROM summary_counts
		WHERE tenant_id = $1 AND kind IN (0, 3) AND events <> 0 ORDER BY 1, 2`, tenant)
}

// countedEvents returns the tenant's daily counts counted from its events.
func (b *jobsBundle) countedEvents(t *testing.T, tenant string) []dailyCount {
	t.Helper()
	return b.dailyCounts(t, `SELECT (occurred_at AT TIME ZONE 'UTC')::date::text, k.value, count(*) FROM events
		CROSS JOIN LATERAL (VALUES (''), (action)) AS k(value) WHERE tenant_id = $1 GROUP BY 1, 2 ORDER BY 1, 2`, tenant)
}

func (b *jobsBundle) dailyCounts(t *testing.T, query, tenant string) []dailyCount {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), query, tenant)
	require.NoError(t, err)
	counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dailyCount])
	require.NoError(t, err)
	return counts
}

func TestSummaryRollupWorker(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	// spread returns n events of action, one every 7 hours back from
	// an hour ago, named after prefix.
	spread := func(prefix, action string, n int) []audex.Event {
		events := make([]audex.Event, n)
		for i := range events {
			events[i] = audex.Event{ID: fmt.Sprintf("%s-%03d", prefix, i), OccurredAt: time.Now().Add(-time.Hour - time.Duration(i)*7*time.Hour),
				Action: action, Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}
		}
		return events
	}
	other := storetest.NewTenant(t)
	b.ingest(t, b.tenant, spread("read", "doc.read", 30))
	b.ingest(t, b.tenant, spread("write", "doc.write", 12))
	b.ingest(t, other, spread("read", "doc.read", 20))
	w, tx := newWorker(t, &jobs.SummaryRollupWorker{Pool: b.pool, Logger: b.logger}), b.tx(t)
	work := func(t *testing.T) {
		t.Helper()
		res, err := w.Work(t.Context(), t, tx, queue.SummaryRollupArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	}

	work(t)
	counted := b.countedEvents(t, b.tenant)
	require.Greater(t, len(counted), 10, "several days, two actions")
	require.Equal(t, counted, b.summaryCounts(t, b.tenant))
	require.Equal(t, b.countedEvents(t, other), b.summaryCounts(t, other))

	// Events that arrive later, on days counted already, are added once.
	b.ingest(t, b.tenant, spread("late", "doc.write", 9))
	work(t)
	require.Equal(t, b.countedEvents(t, b.tenant), b.summaryCounts(t, b.tenant))
	work(t)
	require.Equal(t, b.countedEvents(t, b.tenant), b.summaryCounts(t, b.tenant), "a run with nothing new changes nothing")
}
