package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/storetest"
)

// lease returns the export's lease owner ("" for none) and its end.
func (b *jobsBundle) lease(t *testing.T, id string) (string, time.Time) {
	t.Helper()
	var owner *string
	var until *time.Time
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT lease_owner, lease_until FROM exports WHERE id = $1`, id).Scan(&owner, &until))
	if owner == nil || until == nil {
		return "", time.Time{}
	}
	return *owner, *until
}

func TestExportLease(t *testing.T) {
	t.Parallel()
	timing := jobs.ExportTiming{Window: time.Minute, LeaseTTL: 3 * time.Second}

	// setup starts a worker whose attempt at an export waits at its
	// barrier, with its lease taken; the returned function lets it go on.
	setup := func(t *testing.T) (*jobsBundle, string, func()) {
		t.Helper()
		b := setupJobs(t)
		ingest := storetest.HoldIngest(t, b.pool, b.tenant)
		goOn := func() { _ = ingest.Rollback(context.Background()) }
		id, _ := b.createExport(t, nil)
		b.startWith(t, timing, b.open)
		require.Eventually(t, func() bool {
			owner, _ := b.lease(t, id)
			return owner != "" && storetest.AtIngestBarrier(t, b.pool)
		}, 20*time.Second, 10*time.Millisecond, "the attempt takes the lease and waits at its barrier")
		return b, id, goOn
	}

	t.Run("TheLeaseIsKeptWhileTheAttemptWaits", func(t *testing.T) {
		t.Parallel()
		b, id, goOn := setup(t)
		owner, _ := b.lease(t, id)
		time.Sleep(2 * timing.LeaseTTL)
		now, until := b.lease(t, id)
		require.Equal(t, owner, now, "the same attempt holds it two TTLs on")
		require.True(t, storetest.AtIngestBarrier(t, b.pool))
		require.WithinDuration(t, time.Now().Add(timing.LeaseTTL), until, timing.LeaseTTL/2, "renewed every third of the TTL")
		goOn()
		e := b.waitStatus(t, id, audex.ExportCompleted)
		require.EqualValues(t, 25, e.Progress.RecordsExported)
	})

	t.Run("ALostLeaseStopsTheAttemptWithinAThirdOfItsTTL", func(t *testing.T) {
		t.Parallel()
		b, id, goOn := setup(t)
		// Another attempt holds the lease now (as one would that took it
		// after it ran out).
		_, err := b.pool.Exec(t.Context(), `UPDATE exports SET lease_owner = 'another', lease_until = now() + interval '1 hour' WHERE id = $1`, id)
		require.NoError(t, err)
		lostAt := time.Now()
		// The attempt has stopped once it says so: its statement at the
		// barrier may wait on in the server after the client gave it up.
		require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), `"msg":"export_lease_lost"`) },
			timing.LeaseTTL/3+time.Second, 10*time.Millisecond, "the attempt stops at the keeper's next renewal")
		t.Logf("stopped %s after the lease was lost", time.Since(lostAt).Round(time.Millisecond))

		// The other attempt gives the lease back: the job, which looks
		// again every half TTL, takes it and completes the export.
		_, err = b.pool.Exec(t.Context(), `UPDATE exports SET lease_owner = NULL, lease_until = NULL WHERE id = $1`, id)
		require.NoError(t, err)
		goOn()
		e := b.waitStatus(t, id, audex.ExportCompleted)
		require.EqualValues(t, 25, e.Progress.RecordsExported)
	})

	t.Run("AnAttemptThatCannotRenewItsLeaseStopsBeforeItCanRunOut", func(t *testing.T) {
		t.Parallel()
		b, id, goOn := setup(t)
		// A transaction holds the export's row: the renewals wait, as they
		// would for a database that does not answer.
		tx, err := b.pool.Begin(t.Context())
		require.NoError(t, err)
		defer tx.Rollback(context.Background()) //nolint:errcheck // rolled back below
		var until time.Time
		require.NoError(t, tx.QueryRow(t.Context(), `SELECT lease_until FROM exports WHERE id = $1 FOR UPDATE`, id).Scan(&until))
		require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), `"msg":"export_lease_lost"`) },
			2*timing.LeaseTTL, 10*time.Millisecond, "the attempt stops")
		stoppedAt := time.Now()
		t.Logf("stopped %s before its lease could run out", until.Sub(stoppedAt).Round(time.Millisecond))
		require.True(t, stoppedAt.Before(until.Add(-timing.LeaseTTL/6)), "stopped at least a sixth of the TTL before the lease can run out")

		require.NoError(t, tx.Rollback(t.Context()))
		goOn()
		e := b.waitStatus(t, id, audex.ExportCompleted)
		require.EqualValues(t, 25, e.Progress.RecordsExported)
	})
}
