package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// eventIDs returns the ids of tenant's events of action, in export order.
func (b *jobsBundle) eventIDs(t *testing.T, tenant, action string) []string {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 AND action = $2 ORDER BY occurred_at, id`, tenant, action)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

// onPurgeCompleted makes the bundle's database run statement (PL/pgSQL)
// when a purge's completion records its audit event, as a database in
// trouble would answer it: raise an error, or take long.
func onPurgeCompleted(t *testing.T, b *jobsBundle, statement string) {
	t.Helper()
	_, err := b.pool.Exec(t.Context(), `
		CREATE FUNCTION on_purge_completed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.action = 'audit.purge_completed' THEN `+statement+`; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER on_purge_completed BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION on_purge_completed()`)
	require.NoError(t, err)
}

func TestPurgeWorker(t *testing.T) {
	t.Parallel()

	// setup returns a bundle whose tenant and a neighbour have the same
	// events, and a purge of the tenant's before the instant of the 13th
	// (an instant three events share).
	setup := func(t *testing.T) (*jobsBundle, string, audex.Purge) {
		t.Helper()
		b := setupJobs(t)
		other := storetest.NewTenant(t)
		b.ingest(t, other, b.events)
		p := audex.Purge{TenantID: b.tenant, Before: b.occurredAt(exportOrder(b.events)[12])}
		require.NoError(t, store.CreatePurge(t.Context(), b.pool, &p))
		return b, other, p
	}
	worker := func(t *testing.T, b *jobsBundle) *rivertest.Worker[queue.PurgeArgs, pgx.Tx] {
		t.Helper()
		return newWorker(t, &jobs.PurgeWorker{Pool: b.pool, Logger: b.logger, Window: time.Minute})
	}

	t.Run("DeletesExactlyTheTenantsEventsBeforeTheCutOff", func(t *testing.T) {
		t.Parallel()
		b, other, p := setup(t)
		res, err := worker(t, b).Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)

		want := exportOrder(b.events)
		require.Equal(t, want[12:], b.eventIDs(t, b.tenant, "doc.read"), "the events at and after the cut-off stay")
		require.Equal(t, want, b.eventIDs(t, other, "doc.read"), "another tenant's events stay")
		var ids int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM event_ids WHERE tenant_id = $1 AND occurred_at < $2`, b.tenant, p.Before).Scan(&ids))
		require.Zero(t, ids, "their ids go with them")

		done, err := store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeCompleted, done.Status)
		require.EqualValues(t, 12, done.Deleted)
		require.NotNil(t, done.CompletedAt)
		var metadata []byte
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT metadata FROM events WHERE tenant_id = $1 AND action = 'audit.purge_completed'`, b.tenant).Scan(&metadata))
		var recorded struct {
			Deleted int64 `json:"deleted"`
		}
		require.NoError(t, json.Unmarshal(metadata, &recorded))
		require.EqualValues(t, 12, recorded.Deleted, "the audit event gives the count")
	})

	t.Run("EveryDeletedEventIsALeafFirst", func(t *testing.T) {
		t.Parallel()
		b, _, p := setup(t)
		keys, err := integrity.ParseKeys(storetest.LogKey(t))
		require.NoError(t, err)
		before := map[string]audex.Event{}
		for _, id := range exportOrder(b.events)[:12] {
			e, err := store.GetEvent(t.Context(), b.pool, b.tenant, id)
			require.NoError(t, err)
			before[id] = e
		}
		w := newWorker(t, &jobs.PurgeWorker{Pool: b.pool, Logger: b.logger, Window: time.Minute,
			Sealer: &jobs.LogSealer{Name: "audex", Keys: keys}})
		res, err := w.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Len(t, b.eventIDs(t, b.tenant, "doc.read"), 13)

		size, note, err := store.LatestLogCheckpoint(t.Context(), b.pool, b.tenant)
		require.NoError(t, err)
		c, err := integrity.OpenCheckpoint([]byte(note), keys.VerifierKeys())
		require.NoError(t, err)
		for id, e := range before {
			proof, err := store.ProveLogInclusion(t.Context(), b.pool, b.tenant, id, size)
			require.NoError(t, err, "deleted event %s", id)
			require.NoError(t, tlog.CheckRecord(proof.Hashes, c.Size, c.Root, proof.LeafIndex, tlog.RecordHash(integrity.LeafData(&e))), "deleted event %s", id)
		}
	})

	t.Run("AnErrorOnTheLastAttemptFailsThePurge", func(t *testing.T) {
		t.Parallel()
		b, _, p := setup(t)
		// The database refuses the purge's completion (its audit event),
		// as it would refuse any statement of a database in trouble.
		onPurgeCompleted(t, b, "RAISE EXCEPTION 'refused by the test'")

		// An attempt with attempts left leaves the purge running, for the
		// next attempt to go on with.
		w := worker(t, b)
		_, err := w.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, &river.InsertOpts{MaxAttempts: 2})
		require.ErrorContains(t, err, "refused by the test")
		got, err := store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeRunning, got.Status)

		// The last attempt fails it, and the exports of its range may run.
		_, err = w.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, &river.InsertOpts{MaxAttempts: 1})
		require.ErrorContains(t, err, "refused by the test")
		got, err = store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeFailed, got.Status)
		require.NotNil(t, got.Error)
		require.Contains(t, *got.Error, "refused by the test")
		mayRun, err := store.ExportMayRun(t.Context(), b.pool, b.tenant, p.Before.Add(-time.Hour))
		require.NoError(t, err)
		require.True(t, mayRun, "a failed purge holds no export")
	})

	t.Run("ALastAttemptThatTimesOutLeavesThePurgeRunning", func(t *testing.T) {
		t.Parallel()
		b, _, p := setup(t)
		// The purge's completion waits longer than the attempt's timeout:
		// the attempt is stopped, not the purge failed (the reaper gives
		// it a new job). The timeout (twice the window) leaves a busy
		// machine time to start the purge; the sleep ends with it.
		onPurgeCompleted(t, b, "PERFORM pg_sleep(60)")
		w := newWorker(t, &jobs.PurgeWorker{Pool: b.pool, Logger: b.logger, Window: 2 * time.Second})
		_, err := w.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, &river.InsertOpts{MaxAttempts: 1})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		got, err := store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeRunning, got.Status)
	})

	t.Run("WaitsForAnExportOfItsRange", func(t *testing.T) {
		t.Parallel()
		b, _, p := setup(t)
		exportID := b.storeExport(t, b.newExport())
		w, tx := worker(t, b), b.tx(t)
		res, err := w.Work(t.Context(), t, tx, queue.PurgeArgs{PurgeID: p.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Len(t, b.eventIDs(t, b.tenant, "doc.read"), 25, "nothing is deleted under the export")
		waiting, err := store.GetPurgeByID(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeQueued, waiting.Status)

		require.NoError(t, store.CancelExport(t.Context(), b.pool, b.tenant, exportID, audex.SystemActor()))
		res, err = w.WorkJob(t.Context(), t, tx, res.Job)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Len(t, b.eventIDs(t, b.tenant, "doc.read"), 13)
	})
}

func TestRetentionWorker(t *testing.T) {
	t.Parallel()

	// setup returns a bundle with the tenants of days (a policy of that
	// many days each; 0 for none).
	setup := func(t *testing.T, days ...int) (*jobsBundle, []string) {
		t.Helper()
		b := setupJobs(t)
		tenants := make([]string, len(days))
		for i, d := range days {
			tenants[i] = storetest.NewTenant(t)
			_, err := b.pool.Exec(t.Context(), `INSERT INTO tenants (id) VALUES ($1)`, tenants[i])
			require.NoError(t, err)
			if d > 0 {
				b.setPolicy(t, tenants[i], d)
			}
		}
		return b, tenants
	}
	worker := func(t *testing.T, b *jobsBundle) *rivertest.Worker[queue.RetentionArgs, pgx.Tx] {
		t.Helper()
		return newWorker(t, &jobs.RetentionWorker{Pool: b.pool, Logger: b.logger})
	}
	// run works a retention job and returns when it began and ended.
	run := func(t *testing.T, b *jobsBundle, w *rivertest.Worker[queue.RetentionArgs, pgx.Tx], tx pgx.Tx) (time.Time, time.Time) {
		t.Helper()
		// In UTC, where a day is 24 hours, as the cut-offs are reckoned
		// (in a zone with daylight saving, AddDate across a change is not).
		began := time.Now().UTC()
		res, err := w.Work(t.Context(), t, tx, queue.RetentionArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		return began, time.Now().UTC()
	}

	t.Run("CreatesAPurgeWithItsJobPerTenantWithAPolicy", func(t *testing.T) {
		t.Parallel()
		b, tenants := setup(t, 30, 7, 0)
		tx := b.tx(t)
		began, ended := run(t, b, worker(t, b), tx)

		require.Len(t, b.purges(t, ""), 2, "none for the tenant that keeps everything")
		var ids []string
		for i, days := range []int{30, 7} {
			purges := b.purges(t, tenants[i])
			require.Len(t, purges, 1)
			p := purges[0]
			ids = append(ids, p.ID)
			require.Equal(t, audex.PurgeByRetention, p.Reason)
			require.Equal(t, audex.PurgeQueued, p.Status)
			require.WithinRange(t, p.Before, began.AddDate(0, 0, -days).Add(-time.Microsecond), ended.AddDate(0, 0, -days), "%d days before the run", days)
		}
		requirePurgeJobs(t, tx, ids...)
	})

	t.Run("TwoRunsAtOnceCreateOnePurge", func(t *testing.T) {
		t.Parallel()
		b, tenants := setup(t, 30)
		// Both runs wait for the lock that runs take turns on.
		hold, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer hold.Rollback(context.Background()) //nolint:errcheck // rolled back below
		_, err = hold.Exec(t.Context(), `SELECT pg_advisory_xact_lock(hashtextextended('audex_retention', 0))`)
		require.NoError(t, err)
		w := worker(t, b)
		txs := []pgx.Tx{b.tx(t), b.tx(t)}
		errs := make(chan error, len(txs))
		for _, tx := range txs {
			go func() {
				_, err := w.Work(context.WithoutCancel(t.Context()), t, tx, queue.RetentionArgs{}, nil)
				errs <- err
			}()
		}
		require.Eventually(t, func() bool {
			var waiting int
			require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%audex_retention%'`).Scan(&waiting))
			return waiting == 2
		}, 20*time.Second, 10*time.Millisecond, "both runs wait")
		require.NoError(t, hold.Rollback(t.Context()))
		for range txs {
			require.NoError(t, <-errs)
		}

		purges := b.purges(t, "")
		require.Len(t, purges, 1)
		require.Equal(t, tenants[0], purges[0].TenantID)
		requirePurgeJobs(t, b.tx(t), purges[0].ID)
	})

	t.Run("AShortenedPolicyAppliesAtTheNextRun", func(t *testing.T) {
		t.Parallel()
		b, tenants := setup(t, 400)
		w, tx := worker(t, b), b.tx(t)
		run(t, b, w, tx)
		purges := b.purges(t, tenants[0])
		require.Len(t, purges, 1)
		first := purges[0]
		run(t, b, w, tx)
		require.Equal(t, []audex.Purge{first}, b.purges(t, tenants[0]), "one purge a day while the policy stays")

		b.setPolicy(t, tenants[0], 10)
		began, ended := run(t, b, w, tx)
		purges = b.purges(t, tenants[0])
		require.Len(t, purges, 2)
		second := purges[1]
		require.WithinRange(t, second.Before, began.AddDate(0, 0, -10).Add(-time.Microsecond), ended.AddDate(0, 0, -10))
		requirePurgeJobs(t, tx, first.ID, second.ID)
	})
}

// setPolicy sets tenant's retention policy to days.
func (b *jobsBundle) setPolicy(t *testing.T, tenant string, days int) {
	t.Helper()
	require.NoError(t, store.SetRetentionDays(t.Context(), b.pool, tenant, &days, audex.SystemActor()))
}

// purges returns the purges of tenant (every tenant's for ""), oldest
// first.
func (b *jobsBundle) purges(t *testing.T, tenant string) []audex.Purge {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id FROM purges WHERE $1 IN ('', tenant_id) ORDER BY created_at, id`, tenant)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	purges := make([]audex.Purge, len(ids))
	for i, id := range ids {
		purges[i], err = store.GetPurgeByID(t.Context(), b.pool, id)
		require.NoError(t, err)
	}
	return purges
}

// requirePurgeJobs checks that the purge jobs inserted are one for each of
// ids.
func requirePurgeJobs(t *testing.T, tx pgx.Tx, ids ...string) {
	t.Helper()
	expected := make([]rivertest.ExpectedJob, len(ids))
	for i := range ids {
		expected[i] = rivertest.ExpectedJob{Args: queue.PurgeArgs{}}
	}
	var got []string
	for _, job := range rivertest.RequireManyInsertedTx[*riverpgxv5.Driver](t.Context(), t, tx, expected) {
		var args queue.PurgeArgs
		require.NoError(t, json.Unmarshal(job.EncodedArgs, &args))
		got = append(got, args.PurgeID)
	}
	require.ElementsMatch(t, ids, got)
}
