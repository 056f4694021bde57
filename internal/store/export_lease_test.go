package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// leaseOf returns the export's lease owner ("" for none) and its end.
func (b *exportJobsBundle) leaseOf(t *testing.T, id string) (string, time.Time) {
	t.Helper()
	var owner string
	var until time.Time
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT coalesce(lease_owner, ''), coalesce(lease_until, 'epoch') FROM exports WHERE id = $1`, id).Scan(&owner, &until))
	return owner, until
}

// acquire asks for owner's lease of the export for ttl, with at most
// perTenant of the tenant's exports running (0: no limit).
func (b *exportJobsBundle) acquire(t *testing.T, id, owner string, ttl time.Duration, perTenant int) error {
	t.Helper()
	_, err := store.AcquireExportLease(t.Context(), b.pool, id, owner, 1, ttl, perTenant)
	return err
}

func TestExportLeases(t *testing.T) {
	t.Parallel()
	b := setupExportJobs(t) // subtests use exports of their own
	const ttl = time.Minute

	t.Run("ASecondOwnerCannotTakeALiveLease", func(t *testing.T) {
		t.Parallel()
		id := b.export(t, audex.ExportQueued, 0)
		e, err := store.AcquireExportLease(t.Context(), b.pool, id, "a", 3, ttl, 0)
		require.NoError(t, err)
		require.Equal(t, audex.ExportRunning, e.Status)
		require.Equal(t, 3, e.Attempts)
		require.NotNil(t, e.StartedAt)
		require.ErrorIs(t, b.acquire(t, id, "b", ttl, 0), store.ErrLeaseLost)
		owner, until := b.leaseOf(t, id)
		require.Equal(t, "a", owner)
		require.WithinDuration(t, time.Now().Add(ttl), until, 10*time.Second)
		require.NoError(t, b.acquire(t, id, "a", ttl, 0), "its owner takes it again")
	})

	t.Run("ASecondOwnerTakesALeaseThatRanOut", func(t *testing.T) {
		t.Parallel()
		id := b.export(t, audex.ExportQueued, 0)
		short := time.Second
		require.NoError(t, b.acquire(t, id, "a", short, 0))
		_, until := b.leaseOf(t, id)
		require.ErrorIs(t, b.acquire(t, id, "b", ttl, 0), store.ErrLeaseLost)
		time.Sleep(time.Until(until) + 50*time.Millisecond)
		require.NoError(t, b.acquire(t, id, "b", ttl, 0))
		owner, _ := b.leaseOf(t, id)
		require.Equal(t, "b", owner)
		status, held, err := store.RenewExportLease(t.Context(), b.pool, id, "a", ttl)
		require.NoError(t, err)
		require.Equal(t, audex.ExportRunning, status)
		require.False(t, held, "the first owner learns it lost the lease")
	})

	t.Run("RenewalByAnotherOwnerReportsNotHeld", func(t *testing.T) {
		t.Parallel()
		id := b.export(t, audex.ExportQueued, 0)
		require.NoError(t, b.acquire(t, id, "a", ttl, 0))
		_, before := b.leaseOf(t, id)
		status, held, err := store.RenewExportLease(t.Context(), b.pool, id, "b", time.Hour)
		require.NoError(t, err)
		require.Equal(t, audex.ExportRunning, status)
		require.False(t, held)
		owner, until := b.leaseOf(t, id)
		require.Equal(t, "a", owner)
		require.Equal(t, before, until, "left as it was")

		status, held, err = store.RenewExportLease(t.Context(), b.pool, id, "a", time.Hour)
		require.NoError(t, err)
		require.Equal(t, audex.ExportRunning, status)
		require.True(t, held)
		_, until = b.leaseOf(t, id)
		require.WithinDuration(t, time.Now().Add(time.Hour), until, 10*time.Second)
	})

	t.Run("ReleaseLetsAnotherTakeIt", func(t *testing.T) {
		t.Parallel()
		id := b.export(t, audex.ExportQueued, 0)
		require.NoError(t, b.acquire(t, id, "a", ttl, 0))
		require.NoError(t, store.ReleaseExportLease(t.Context(), b.pool, id, "b"))
		owner, _ := b.leaseOf(t, id)
		require.Equal(t, "a", owner, "only its owner releases a lease")
		require.ErrorIs(t, b.acquire(t, id, "b", ttl, 0), store.ErrLeaseLost)

		require.NoError(t, store.ReleaseExportLease(t.Context(), b.pool, id, "a"))
		owner, _ = b.leaseOf(t, id)
		require.Empty(t, owner)
		require.NoError(t, b.acquire(t, id, "b", ttl, 0))
	})

	t.Run("RunningPerTenantLimitsRunningExports", func(t *testing.T) {
		t.Parallel()
		busy := &exportJobsBundle{pool: b.pool, tenant: storetest.NewTenant(t)}
		first, second, third := busy.export(t, audex.ExportQueued, 0), busy.export(t, audex.ExportQueued, 0), busy.export(t, audex.ExportQueued, 0)
		require.NoError(t, b.acquire(t, first, "a", ttl, 2))
		require.NoError(t, b.acquire(t, second, "b", ttl, 2))
		e, err := store.AcquireExportLease(t.Context(), b.pool, third, "c", 1, ttl, 2)
		require.ErrorIs(t, err, store.ErrTenantBusy)
		require.Equal(t, audex.ExportQueued, e.Status, "it stays queued")
		owner, _ := b.leaseOf(t, third)
		require.Empty(t, owner)

		other := &exportJobsBundle{pool: b.pool, tenant: storetest.NewTenant(t)}
		require.NoError(t, b.acquire(t, other.export(t, audex.ExportQueued, 0), "d", ttl, 2), "another tenant's turn is its own")

		require.NoError(t, store.ReleaseExportLease(t.Context(), b.pool, first, "a"))
		require.NoError(t, b.acquire(t, third, "c", ttl, 2), "a released lease leaves a turn")
	})
}
