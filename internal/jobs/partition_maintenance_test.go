package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
)

func TestPartitionMaintenanceWorker(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	now := time.Now().UTC()
	thisMonth := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	name := func(i int) string { return thisMonth.AddDate(0, i, 0).Format("events_2006_01") }
	// The months ahead have no partitions (as in a database whose worker
	// did not run for months), and an event of the last one waits in the
	// default partition.
	for i := 1; i <= 3; i++ {
		_, err := b.pool.Exec(t.Context(), `DROP TABLE `+name(i))
		require.NoError(t, err)
	}
	b.ingest(t, b.tenant, []audex.Event{{ID: "ahead", OccurredAt: thisMonth.AddDate(0, 3, 14), Action: "doc.read",
		Actor: audex.Actor{ID: "alice"}, Metadata: []byte("{}")}})
	// partitionOf returns the partition that holds the event "ahead".
	partitionOf := func() string {
		var table string
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT tableoid::regclass::text FROM events WHERE tenant_id = $1 AND id = 'ahead'`, b.tenant).Scan(&table))
		return table
	}
	require.Equal(t, "events_default", partitionOf())

	res, err := newWorker(t, &jobs.PartitionMaintenanceWorker{Pool: b.pool}).Work(t.Context(), t, b.tx(t), queue.PartitionMaintenanceArgs{}, nil)
	require.NoError(t, err)
	require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	for i := -1; i <= 3; i++ {
		var bounds string
		err := b.pool.QueryRow(t.Context(), `SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c
			JOIN pg_inherits i ON i.inhrelid = c.oid WHERE i.inhparent = 'events'::regclass AND c.relname = $1`, name(i)).Scan(&bounds)
		require.NoError(t, err, "%s is a partition of events", name(i))
		require.Equal(t, fmt.Sprintf("FOR VALUES FROM ('%s') TO ('%s')", b.timestamp(t, thisMonth.AddDate(0, i, 0)), b.timestamp(t, thisMonth.AddDate(0, i+1, 0))), bounds)
	}
	require.Equal(t, name(3), partitionOf(), "the event moved out of the default partition")
	require.Len(t, b.eventIDs(t, b.tenant, "doc.read"), 26, "no event lost")
}

// timestamp returns at as the database's session writes a timestamptz.
func (b *jobsBundle) timestamp(t *testing.T, at time.Time) string {
	t.Helper()
	var s string
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT $1::timestamptz::text`, at).Scan(&s))
	return s
}
