package walltest_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/servertest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
	"github.com/audex-dev/audex/internal/walltest"
)

// TestHostileTenantStallsNoOther runs the hostile tenant against the api
// and worker processes as deployed (default limits), beside another
// tenant whose every request must answer within a second.
func TestHostileTenantStallsNoOther(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	since, until := now.AddDate(0, 0, -10), now.Add(time.Hour)

	hostile := storetest.NewTenant(t)
	hostileKey := storetest.NewKey(t, srv.Pool, hostile, audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport)
	const preload = 60_000
	for done := 0; done < preload; done += 1000 {
		batch := make([]audex.Event, 1000)
		for i := range batch {
			n := done + i
			batch[i] = audex.Event{ID: fmt.Sprintf("h%06d", n), OccurredAt: since.Add(time.Duration(n) * 10 * time.Second),
				Action: fmt.Sprintf("act.%d", n%7), Actor: audex.Actor{ID: fmt.Sprintf("actor-%d", n%97)}, Metadata: []byte(`{"pad":"` + fmt.Sprintf("%0200d", n) + `"}`)}
		}
		_, err := store.InsertEvents(ctx, srv.Pool, hostile, batch)
		require.NoError(t, err)
	}

	report, err := walltest.Run(ctx, walltest.Config{
		URL: srv.URL, HostileKey: hostileKey, VictimKey: srv.Key, Duration: 20 * time.Second,
		Since: since, Until: until, Destination: "local", PartMaxRecords: 1000,
	})
	require.NoError(t, err)
	for _, line := range report.Summary() {
		t.Log(line)
	}
	t.Logf("hostile answers: %v", report.Hostile)
	require.Empty(t, report.Failures(time.Second, 10*time.Second))
	require.Len(t, report.VictimExportStarts, 3)

	// The hostile tenant met its caps, and never a 500.
	require.Positive(t, report.Hostile["export"][http.StatusTooManyRequests], "the export flood met the tenant's cap")
	require.Positive(t, report.Hostile["download"][http.StatusTooManyRequests], "the stalled downloads met the tenant's cap")
	for kind, statuses := range report.Hostile {
		require.Zero(t, statuses[http.StatusInternalServerError], "%s answered 500", kind)
	}

	// Nothing the hostile tenant sent is left running once it stops: no
	// statement of the api's sessions, and every export of its flood ends
	// complete and exact.
	require.Eventually(t, func() bool {
		var active int
		require.NoError(t, srv.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = 'audex-api' AND state = 'active'`).Scan(&active))
		return active == 0
	}, 15*time.Second, 100*time.Millisecond, "the api's statements end with their requests")
	for _, id := range append(report.HostileExports, report.VictimExports...) {
		var status string
		var records, want int64
		require.Eventually(t, func() bool {
			require.NoError(t, srv.Pool.QueryRow(ctx, `SELECT status, records_exported FROM exports WHERE id = $1`, id).Scan(&status, &records))
			return status != audex.ExportQueued && status != audex.ExportRunning
		}, 3*time.Minute, 200*time.Millisecond, "export %s finishes", id)
		require.Equal(t, audex.ExportCompleted, status, "export %s", id)
		require.NoError(t, srv.Pool.QueryRow(ctx, `SELECT count(*) FROM events e JOIN exports x ON x.tenant_id = e.tenant_id
			WHERE x.id = $1 AND e.occurred_at >= x.since AND e.occurred_at < x.until AND e.received_at < x.as_of`, id).Scan(&want))
		require.Equal(t, want, records, "export %s holds every event of its range once", id)
	}
	var stored int
	require.NoError(t, srv.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND id = ANY($2)`, srv.Tenant, report.IngestedIDs).Scan(&stored))
	require.Equal(t, len(report.IngestedIDs), stored, "every event the other tenant was told was stored is")
}
