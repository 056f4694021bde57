package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// exportJobsBundle is a database of its own (LockJoblessExports looks at
// every tenant's exports and locks them) with one tenant.
type exportJobsBundle struct {
	pool   *pgxpool.Pool
	tenant string
}

func setupExportJobs(t *testing.T) *exportJobsBundle {
	t.Helper()
	return &exportJobsBundle{pool: storetest.IsolatedPool(t), tenant: storetest.NewTenant(t)}
}

// export stores an export of the bundle's tenant with status, created age
// ago, and returns its id.
func (b *exportJobsBundle) export(t *testing.T, status string, age time.Duration) string {
	t.Helper()
	since := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	e := audex.Export{ID: audex.NewID("exp"), TenantID: b.tenant, Format: "jsonl", Compression: "none", Since: since, Until: since.AddDate(0, 1, 0),
		Filters: []byte("{}"), Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: "/tmp"}, KeyPrefix: "x/", PartMaxRecords: 1000, PartMaxBytes: 1 << 20}
	require.NoError(t, store.CreateExport(t.Context(), b.pool, &e, 0))
	_, err := b.pool.Exec(t.Context(), `UPDATE exports SET status = $2, created_at = now() - $3::interval WHERE id = $1`, e.ID, status, age)
	require.NoError(t, err)
	return e.ID
}

// job inserts a River job row of kind whose args name id under argKey,
// in state, as River would leave it.
func (b *exportJobsBundle) job(t *testing.T, kind, argKey, id, state string) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `
		INSERT INTO river_job (kind, args, max_attempts, queue, state, finalized_at)
		VALUES ($1, jsonb_build_object($4::text, $2::text), 25, 'exports', $3::river_job_state,
			CASE WHEN $3 IN ('completed', 'cancelled', 'discarded') THEN now() END)`, kind, id, state, argKey)
	require.NoError(t, err)
}

// lockJobless calls LockJoblessExports in tx and returns the ids found.
func lockJobless(t *testing.T, tx pgx.Tx) []string {
	t.Helper()
	found, err := store.LockJoblessExports(t.Context(), tx, "export", time.Minute, 100)
	require.NoError(t, err)
	ids := []string{}
	for _, e := range found {
		ids = append(ids, e.ID)
	}
	return ids
}

func TestLockJoblessExports(t *testing.T) {
	t.Parallel()

	t.Run("FindsQueuedAndRunningExportsWithoutALiveExportJob", func(t *testing.T) {
		t.Parallel()
		b := setupExportJobs(t)
		old := 2 * time.Minute
		cases := []struct {
			name     string
			status   string
			age      time.Duration
			jobState string // "" for no job at all
			jobless  bool
		}{
			{"QueuedWithItsJobDeleted", "queued", old, "", true},
			{"RunningWithItsJobDeleted", "running", old, "", true},
			{"QueuedWithItsJobCancelled", "queued", old, "cancelled", true},
			{"RunningWithItsJobDiscarded", "running", old, "discarded", true},
			{"QueuedWithItsJobCompleted", "queued", old, "completed", true},
			{"QueuedWithItsJobAvailable", "queued", old, "available", false},
			{"RunningWithItsJobRunning", "running", old, "running", false},
			{"RunningWithItsJobSnoozed", "running", old, "scheduled", false},
			{"QueuedWithItsJobRetryable", "queued", old, "retryable", false},
			{"QueuedWithItsJobPending", "queued", old, "pending", false},
			{"YoungerThanTheGrace", "queued", 0, "", false},
			{"Completed", "completed", old, "", false},
			{"Failed", "failed", old, "cancelled", false},
			{"Cancelled", "cancelled", old, "", false},
		}
		want := []string{}
		names := map[string]string{}
		for _, tc := range cases {
			id := b.export(t, tc.status, tc.age)
			names[id] = tc.name
			if tc.jobState != "" {
				b.job(t, "export", "export_id", id, tc.jobState)
			}
			if tc.jobless {
				want = append(want, id)
			}
		}
		// A live job of another kind that names the export does not work it.
		other := b.export(t, "queued", old)
		names[other] = "QueuedWithALiveJobOfAnotherKind"
		b.job(t, "export_reaper", "export_id", other, "available")
		want = append(want, other)

		tx, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
		found, err := store.LockJoblessExports(t.Context(), tx, "export", time.Minute, 100)
		require.NoError(t, err)
		got := []string{}
		for _, e := range found {
			require.Equal(t, b.tenant, e.TenantID)
			got = append(got, e.ID)
		}
		gotNames, wantNames := []string{}, []string{}
		for _, id := range got {
			gotNames = append(gotNames, names[id])
		}
		for _, id := range want {
			wantNames = append(wantNames, names[id])
		}
		require.ElementsMatch(t, wantNames, gotNames)
	})

	t.Run("FindsQueuedAndRunningPurgesWithoutALivePurgeJob", func(t *testing.T) {
		t.Parallel()
		b := setupExportJobs(t)
		purge := func(status string, age time.Duration, jobState string) string {
			p := audex.Purge{TenantID: b.tenant, Before: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
			require.NoError(t, store.CreatePurge(t.Context(), b.pool, &p))
			_, err := b.pool.Exec(t.Context(), `UPDATE purges SET status = $2, created_at = now() - $3::interval WHERE id = $1`, p.ID, status, age)
			require.NoError(t, err)
			if jobState != "" {
				b.job(t, "purge", "purge_id", p.ID, jobState)
			}
			return p.ID
		}
		old := 2 * time.Minute
		want := []string{
			purge("running", old, ""),          // its job deleted from River's UI
			purge("running", old, "cancelled"), // cancelled there
			purge("queued", old, "discarded"),
		}
		purge("running", old, "running")
		purge("queued", old, "scheduled")
		purge("running", 0, "") // younger than the grace
		purge("completed", old, "")
		purge("failed", old, "discarded")
		// An export's job that names no purge works none.
		b.job(t, "export", "export_id", want[0], "available")

		tx, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
		found, err := store.LockJoblessPurges(t.Context(), tx, "purge", time.Minute, 100)
		require.NoError(t, err)
		got := []string{}
		for _, p := range found {
			require.Equal(t, b.tenant, p.TenantID)
			got = append(got, p.ID)
		}
		require.ElementsMatch(t, want, got)
		exports, err := store.LockJoblessExports(t.Context(), tx, "export", time.Minute, 100)
		require.NoError(t, err)
		require.Empty(t, exports, "no export is jobless")
	})

	t.Run("ConcurrentCallersNeverTakeOneExportTwice", func(t *testing.T) {
		t.Parallel()
		b := setupExportJobs(t)
		first, second := b.export(t, "queued", 2*time.Minute), b.export(t, "queued", 3*time.Minute)

		tx1, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx1.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
		require.Equal(t, []string{second, first}, lockJobless(t, tx1), "oldest first")

		tx2, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx2.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
		require.Empty(t, lockJobless(t, tx2), "the rows another caller holds are skipped, not waited for")
		require.NoError(t, tx2.Rollback(t.Context()))

		// The first caller requeues one export and commits: its job is
		// live, the other export is still jobless.
		_, err = tx1.Exec(t.Context(), `INSERT INTO river_job (kind, args, max_attempts, queue) VALUES ('export', jsonb_build_object('export_id', $1::text), 25, 'exports')`, first)
		require.NoError(t, err)
		require.NoError(t, tx1.Commit(t.Context()))

		tx3, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx3.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck
		require.Equal(t, []string{second}, lockJobless(t, tx3))
	})
}
