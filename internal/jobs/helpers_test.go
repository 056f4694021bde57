package jobs_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// jobsBundle is a database of its own (workers look at every tenant's
// rows, and a River client would take other tests' jobs) with a tenant's
// events, a folder that is the "local" destination, the API's insert-only
// River client and the workers' log.
type jobsBundle struct {
	pool    *pgxpool.Pool
	tenant  string
	events  []audex.Event         // the tenant's events, as ingested
	folder  string                // the "local" destination
	inserts *river.Client[pgx.Tx] // the API's insert-only client
	logger  *slog.Logger          // the workers' logger, writing to logs
	logs    *logtest.Buffer
}

// setupJobs returns a bundle whose tenant has 25 events an hour ago, three
// to an instant, with ids that run against time: an export orders ties by
// id, and a part of 10 ends inside a tie.
func setupJobs(t *testing.T) *jobsBundle {
	t.Helper()
	pool := storetest.IsolatedPool(t)
	inserts, err := queue.NewInsertClient(pool, discard())
	require.NoError(t, err)
	logger, logs := logtest.NewLogger()
	b := &jobsBundle{pool: pool, tenant: storetest.NewTenant(t), folder: t.TempDir(), inserts: inserts, logger: logger, logs: logs}
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	b.events = make([]audex.Event, 25)
	for i := range b.events {
		b.events[i] = audex.Event{ID: fmt.Sprintf("ev-%02d", 24-i), OccurredAt: start.Add(time.Duration(i/3) * time.Second),
			Action: "doc.read", Actor: audex.Actor{ID: "alice"}, Metadata: []byte("{}")}
	}
	b.ingest(t, b.tenant, b.events)
	return b
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ingest stores events of tenant.
func (b *jobsBundle) ingest(t *testing.T, tenant string, events []audex.Event) {
	t.Helper()
	_, err := store.InsertEvents(t.Context(), b.pool, tenant, events)
	require.NoError(t, err)
}

// exportOrder returns the ids of events in the order an export writes
// them: by time, ties by id (byte order, as the column's "C" collation).
func exportOrder(events []audex.Event) []string {
	sorted := slices.Clone(events)
	slices.SortFunc(sorted, func(a, b audex.Event) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), strings.Compare(a.ID, b.ID))
	})
	ids := make([]string, len(sorted))
	for i, e := range sorted {
		ids[i] = e.ID
	}
	return ids
}

// newExport returns a queued JSONL export of the tenant's last day to the
// "local" destination, 10 records a part, not stored yet.
func (b *jobsBundle) newExport() audex.Export {
	e := audex.Export{ID: audex.NewID("exp"), TenantID: b.tenant, Format: "jsonl", Compression: "none",
		Since: time.Now().Add(-24 * time.Hour), Until: time.Now().Add(time.Hour), Filters: []byte("{}"),
		Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: b.folder}, PartMaxRecords: 10, PartMaxBytes: 1 << 20}
	e.KeyPrefix = e.ID + "/"
	return e
}

// storeExport stores e without a job (River's test worker inserts it) and
// returns its id.
func (b *jobsBundle) storeExport(t *testing.T, e audex.Export) string {
	t.Helper()
	require.NoError(t, store.CreateExport(t.Context(), b.pool, &e, 0))
	return e.ID
}

// createExport stores a queued export and inserts its job in one
// transaction, as the API does, with the job's insert options, and
// returns the export's id and the job's.
func (b *jobsBundle) createExport(t *testing.T, opts *river.InsertOpts) (string, int64) {
	t.Helper()
	e := b.newExport()
	var jobID int64
	err := pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
		if err := store.CreateExport(t.Context(), tx, &e, 0); err != nil {
			return err
		}
		res, err := b.inserts.InsertTx(t.Context(), tx, queue.ExportArgs{ExportID: e.ID}, opts)
		if err != nil {
			return err
		}
		jobID = res.Job.ID
		return nil
	})
	require.NoError(t, err)
	return e.ID, jobID
}

// open is the workers' SinkOpener: "local" is the bundle's folder, any
// other destination is no longer configured.
func (b *jobsBundle) open(ctx context.Context, name string) (sinks.Sink, error) {
	if name != "local" {
		return nil, jobs.ErrDestinationGone
	}
	return sinks.New(ctx, sinks.Config{Type: "file", Bucket: b.folder}, os.Getenv)
}

// sink is the "local" destination's sink.
func (b *jobsBundle) sink(t *testing.T) sinks.Sink {
	t.Helper()
	s, err := b.open(t.Context(), "local")
	require.NoError(t, err)
	return s
}

// start runs a worker (with the reaper every 100 ms) until the test ends.
func (b *jobsBundle) start(t *testing.T) {
	t.Helper()
	b.startWith(t, jobs.ExportTiming{Window: 2 * time.Second, LeaseTTL: 5 * time.Second}, b.open)
}

// startWith runs a worker with timing that opens sinks with open (and the
// reaper every 100 ms) until the test ends.
func (b *jobsBundle) startWith(t *testing.T, timing jobs.ExportTiming, open jobs.SinkOpener) {
	t.Helper()
	client, err := jobs.NewClient(jobs.Config{Pool: b.pool, Logger: b.logger, OpenSink: open,
		ExportTiming: timing, ReaperInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.WithoutCancel(t.Context())))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
}

// newWorker returns River's test worker for w: it inserts and works jobs
// in a transaction of the test's (tx), with an insert-only River client
// in the job's context. w itself works through its own pool.
func newWorker[T river.JobArgs](t *testing.T, w river.Worker[T]) *rivertest.Worker[T, pgx.Tx] {
	t.Helper()
	return rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Logger: discard()}, w)
}

// tx begins a transaction for River's test worker, rolled back when the
// test ends.
func (b *jobsBundle) tx(t *testing.T) pgx.Tx {
	t.Helper()
	tx, err := b.pool.Begin(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// waitStatus waits until the export has status.
func (b *jobsBundle) waitStatus(t *testing.T, exportID, status string) audex.Export {
	t.Helper()
	var e audex.Export
	require.Eventually(t, func() bool {
		var err error
		e, err = store.GetExportByID(t.Context(), b.pool, exportID)
		require.NoError(t, err)
		return e.Status == status
	}, 60*time.Second, 50*time.Millisecond, "export %s reaches %s", exportID, status)
	return e
}
