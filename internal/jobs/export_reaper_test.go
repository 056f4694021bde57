package jobs_test

import (
	"bufio"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

// age makes an export older than the reaper's grace for jobless exports.
func (b *jobsBundle) age(t *testing.T, exportID string) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `UPDATE exports SET created_at = created_at - $2::interval WHERE id = $1`, exportID, 2*jobs.DefaultJoblessGrace)
	require.NoError(t, err)
}

// exportJobs returns the states of the export jobs that name exportID,
// oldest first.
func (b *jobsBundle) exportJobs(t *testing.T, exportID string) []string {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT state::text FROM river_job WHERE kind = 'export' AND args->>'export_id' = $1 ORDER BY id`, exportID)
	require.NoError(t, err)
	states, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return states
}

// waitJobs waits until the export jobs that name exportID are in states
// (River completes a job shortly after its worker returns).
func (b *jobsBundle) waitJobs(t *testing.T, exportID string, states ...string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, states, b.exportJobs(t, exportID))
	}, 30*time.Second, 50*time.Millisecond)
}

// requeues returns the tenant of each export_job_requeued line of
// exportID in the worker's log.
func (b *jobsBundle) requeues(t *testing.T, exportID string) []string {
	t.Helper()
	var tenants []string
	sc := bufio.NewScanner(strings.NewReader(b.logs.String()))
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			ExportID string `json:"export_id"`
			TenantID string `json:"tenant_id"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
		if line.Msg == "export_job_requeued" && line.ExportID == exportID {
			tenants = append(tenants, line.TenantID)
		}
	}
	return tenants
}

func TestExportReaperRequeuesJoblessExports(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)

	// Deleted from River's UI before any worker took it.
	deleted, deletedJob := b.createExport(t, nil)
	_, err := b.inserts.JobDelete(t.Context(), deletedJob)
	require.NoError(t, err)
	b.age(t, deleted)
	// Cancelled from River's UI: the job is finalized, the export not.
	cancelled, cancelledJob := b.createExport(t, nil)
	_, err = b.inserts.JobCancel(t.Context(), cancelledJob)
	require.NoError(t, err)
	b.age(t, cancelled)
	// Jobless, but younger than the grace.
	young, youngJob := b.createExport(t, nil)
	_, err = b.inserts.JobDelete(t.Context(), youngJob)
	require.NoError(t, err)
	// A live job that runs later.
	alive, _ := b.createExport(t, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	b.age(t, alive)
	require.Equal(t, []string{"cancelled"}, b.exportJobs(t, cancelled))
	require.Empty(t, b.exportJobs(t, deleted))

	b.start(t)
	// The reaper's first runs requeue the jobless exports; the run that
	// requeued both saw the other two exports as well.
	require.Eventually(t, func() bool {
		return len(b.requeues(t, deleted)) > 0 && len(b.requeues(t, cancelled)) > 0
	}, 30*time.Second, 50*time.Millisecond, "the jobless exports are requeued")

	t.Run("AnExportWithALiveJobIsLeftAlone", func(t *testing.T) {
		require.Equal(t, []string{"scheduled"}, b.exportJobs(t, alive), "no second job")
		require.Empty(t, b.requeues(t, alive))
		e, err := store.GetExportByID(t.Context(), b.pool, alive)
		require.NoError(t, err)
		require.Equal(t, audex.ExportQueued, e.Status)
	})
	t.Run("AJoblessExportYoungerThanTheGraceIsLeftAlone", func(t *testing.T) {
		require.Empty(t, b.exportJobs(t, young))
		require.Empty(t, b.requeues(t, young))
	})
	t.Run("AnExportWhoseJobWasDeletedGetsAJobAndCompletes", func(t *testing.T) {
		e := b.waitStatus(t, deleted, audex.ExportCompleted)
		require.EqualValues(t, 25, e.Progress.RecordsExported)
		b.waitJobs(t, deleted, "completed")
		require.Equal(t, []string{b.tenant}, b.requeues(t, deleted), "requeued once, logged with its tenant")
	})
	t.Run("AnExportWhoseJobWasCancelledGetsAJobAndCompletes", func(t *testing.T) {
		b.waitStatus(t, cancelled, audex.ExportCompleted)
		b.waitJobs(t, cancelled, "cancelled", "completed")
		require.Equal(t, []string{b.tenant}, b.requeues(t, cancelled))
	})
}

func TestExportReaperRequeuesJoblessPurges(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	// A purge of the tenant's first 12 events whose job was cancelled from
	// River's UI while the purge ran: nothing would end it, and it would
	// hold every export of its range.
	p := audex.Purge{TenantID: b.tenant, Before: b.occurredAt(exportOrder(b.events)[12])}
	require.NoError(t, store.CreatePurge(t.Context(), b.pool, &p))
	res, err := b.inserts.Insert(t.Context(), queue.PurgeArgs{PurgeID: p.ID}, nil)
	require.NoError(t, err)
	_, err = b.inserts.JobCancel(t.Context(), res.Job.ID)
	require.NoError(t, err)
	// Older than the reaper's grace, as are the events it deletes (a purge
	// deletes what was received before it was asked for).
	_, err = b.pool.Exec(t.Context(), `UPDATE purges SET status = 'running', started_at = now(), created_at = created_at - $2::interval WHERE id = $1`,
		p.ID, 2*jobs.DefaultJoblessGrace)
	require.NoError(t, err)
	_, err = b.pool.Exec(t.Context(), `UPDATE events SET received_at = received_at - $2::interval WHERE tenant_id = $1`, b.tenant, 3*jobs.DefaultJoblessGrace)
	require.NoError(t, err)

	b.start(t)
	require.Eventually(t, func() bool {
		done, err := store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		return done.Status == audex.PurgeCompleted
	}, 30*time.Second, 50*time.Millisecond, "the purge gets a job and completes")
	require.Len(t, b.eventIDs(t, b.tenant, "doc.read"), 13)
	require.Contains(t, b.logs.String(), `"msg":"purge_job_requeued","purge_id":"`+p.ID+`","tenant_id":"`+b.tenant+`"`)
}

func TestExportReaperResumesStalledExports(t *testing.T) {
	t.Parallel()

	t.Run("TwoReapersAtOnceResumeAStalledExportOnce", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		stalled, _ := b.createExport(t, nil)
		recent, _ := b.createExport(t, nil)
		live, _ := b.createExport(t, nil)
		for id, until := range map[string]string{stalled: "-1 minute", recent: "-100 milliseconds", live: "1 minute"} {
			_, err := b.pool.Exec(t.Context(), `UPDATE exports SET status = 'running', lease_owner = 'dead', lease_until = now() + $2::interval WHERE id = $1`, id, until)
			require.NoError(t, err)
		}
		first, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer first.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
		found, err := store.LockStalledExports(t.Context(), first, 10*time.Second, 100)
		require.NoError(t, err)
		require.Equal(t, []string{stalled}, found, "neither a live lease nor one that ran out within the grace")

		second, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer second.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
		found, err = store.LockStalledExports(t.Context(), second, 10*time.Second, 100)
		require.NoError(t, err)
		require.Empty(t, found, "the first reaper holds it")
		require.NoError(t, second.Commit(t.Context()))

		require.NoError(t, first.Commit(t.Context()))
		owner, _ := b.lease(t, stalled)
		require.Empty(t, owner, "its lease ended")
		tx, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx.Rollback(context.Background()) //nolint:errcheck // read only
		found, err = store.LockStalledExports(t.Context(), tx, 10*time.Second, 100)
		require.NoError(t, err)
		require.Empty(t, found, "a resumed export is not found again")
	})

	t.Run("TwoJobsCarryTheLoop", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		b.start(t)
		// loops returns the ids of the reaper jobs not finished, and how
		// many times the fewest snoozed.
		loops := func() ([]int64, int) {
			rows, err := b.pool.Query(t.Context(), `SELECT id, coalesce((metadata->>'snoozes')::int, 0) FROM river_job
				WHERE kind = 'export_reaper' AND state NOT IN ('completed', 'cancelled', 'discarded') ORDER BY id`)
			require.NoError(t, err)
			var ids []int64
			fewest := -1
			for rows.Next() {
				var id int64
				var snoozes int
				require.NoError(t, rows.Scan(&id, &snoozes))
				ids = append(ids, id)
				if fewest < 0 || snoozes < fewest {
					fewest = snoozes
				}
			}
			require.NoError(t, rows.Err())
			return ids, fewest
		}
		started := time.Now()
		var carriers []int64
		require.Eventually(t, func() bool {
			ids, fewest := loops()
			carriers = ids
			return len(ids) == 2 && fewest >= 3
		}, 30*time.Second, 50*time.Millisecond, "two reaper jobs loop")
		t.Logf("two loops after %s", time.Since(started).Round(time.Millisecond))

		// More reaper jobs (River's leader inserts one every 30 s) find the
		// loop carried by older jobs and finish.
		for range 3 {
			_, err := b.inserts.Insert(t.Context(), queue.ExportReaperArgs{}, nil)
			require.NoError(t, err)
		}
		started = time.Now()
		require.Eventually(t, func() bool {
			ids, _ := loops()
			return len(ids) == 2
		}, 30*time.Second, 50*time.Millisecond, "the extra jobs finish")
		t.Logf("two loops again after %s", time.Since(started).Round(time.Millisecond))
		time.Sleep(time.Second)
		ids, _ := loops()
		require.Equal(t, carriers, ids, "the two oldest go on")
	})
}
