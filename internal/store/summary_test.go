package store_test

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
	"github.com/audex-dev/audex/migrations"
)

// summaryBundle is a tenant with events spread over days, a neighbour
// tenant with events on the same days, and the windows to check.
type summaryBundle struct {
	pool    *pgxpool.Pool
	tenant  string
	start   time.Time // midnight of the first day with events
	windows [][2]time.Time
	next    int // the next event number
	rng     *rand.Rand
}

func setupSummary(t *testing.T) *summaryBundle {
	t.Helper()
	b := &summaryBundle{pool: storetest.Pool(t), tenant: storetest.NewTenant(t),
		start: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(1, 2))}
	day := 24 * time.Hour
	s := b.start
	b.windows = [][2]time.Time{
		{s, s.Add(10 * day)}, // whole days
		{s.Add(3 * time.Hour), s.Add(8*day + 20*time.Hour)},                 // both ends mostly covered: subtracted
		{s.Add(20 * time.Hour), s.Add(8*day + 2*time.Hour)},                 // both ends barely covered: scanned
		{s.Add(2*day + time.Hour), s.Add(2*day + 23*time.Hour)},             // most of one day
		{s.Add(2*day + 5*time.Hour), s.Add(2*day + 9*time.Hour)},            // a little of one day
		{s.Add(-5 * day), s.Add(30 * day)},                                  // beyond the events both ways
		{s.Add(4*day + 13*time.Hour), s.Add(5*day + 11*time.Hour)},          // two partial days
		{s.Add(5 * time.Hour), time.Now().UTC().Truncate(time.Microsecond)}, // up to now: today from the counts
		{s.Add(7 * time.Hour), time.Now().UTC().Add(time.Hour)},             // into the future
	}
	other := storetest.NewTenant(t)
	b.ingest(t, other, 800, 0)
	b.ingest(t, b.tenant, 4000, 0)
	return b
}

// ingest stores n events of tenant spread over ten days from b.start,
// shifted by shift; actors, targets and resources are skewed so that the
// top lists have leaders, ties and long tails.
func (b *summaryBundle) ingest(t *testing.T, tenant string, n int, shift time.Duration) {
	t.Helper()
	events := make([]audex.Event, 0, n)
	for range n {
		b.next++
		i := b.next
		at := b.start.Add(shift + time.Duration(b.rng.Int64N(int64(10*24*time.Hour))))
		e := audex.Event{ID: fmt.Sprintf("e%d", i), OccurredAt: at.Truncate(time.Microsecond),
			Action: []string{"doc.read", "doc.write", "user.login", "user.logout"}[b.rng.IntN(4)], Metadata: []byte("{}")}
		if b.rng.IntN(3) == 0 {
			e.Actor.ID = fmt.Sprintf("actor-%d", b.rng.IntN(8)) // leaders
		} else {
			e.Actor.ID = fmt.Sprintf("actor-%d", b.rng.IntN(400)) // a long tail
		}
		if b.rng.IntN(5) > 0 {
			id := fmt.Sprintf("target-%d", int(b.rng.ExpFloat64()*30))
			e.Target = &audex.Target{ID: &id}
		}
		if b.rng.IntN(4) > 0 {
			r := fmt.Sprintf("projects/p%d", b.rng.IntN(50))
			e.Resource = &r
		}
		switch k := b.rng.IntN(10); {
		case k < 3:
			ip := fmt.Sprintf("10.0.0.%d", b.rng.IntN(5)) // leaders
			e.SourceIP = &ip
		case k < 8:
			ip := fmt.Sprintf("2001:db8::%x", b.rng.IntN(300)) // a long tail
			e.SourceIP = &ip
		}
		if k := b.rng.IntN(3); k < 2 {
			ok := k == 0
			e.Success = &ok
		}
		events = append(events, e)
	}
	for len(events) > 0 {
		batch := events[:min(1000, len(events))]
		events = events[len(batch):]
		_, err := store.InsertEvents(t.Context(), b.pool, tenant, batch)
		require.NoError(t, err)
	}
}

// requireExact checks every window: the summary equals the scan's, and
// its total and days equal direct counts.
func (b *summaryBundle) requireExact(t *testing.T, stage string) {
	t.Helper()
	for _, w := range b.windows {
		f := audex.Filter{Since: &w[0], Until: &w[1]}
		want, err := store.ScanSummary(t.Context(), b.pool, b.tenant, f)
		require.NoError(t, err)
		got, err := store.SummarizeEvents(t.Context(), b.pool, b.tenant, f, 0)
		require.NoError(t, err)
		require.Equal(t, want, got, "%s: window %s to %s", stage, w[0], w[1])
		var n int64
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3`,
			b.tenant, w[0], w[1]).Scan(&n))
		require.Equal(t, n, got.TotalEvents, "%s: window %s to %s", stage, w[0], w[1])
		rows, err := b.pool.Query(t.Context(), `SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC')::date::text, count(*), count(*) FILTER (WHERE success IS FALSE)
			FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1 ORDER BY 1`, b.tenant, w[0], w[1])
		require.NoError(t, err)
		days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (d audex.DayCount, err error) {
			return d, r.Scan(&d.Day, &d.Events, &d.Failed)
		})
		require.NoError(t, err)
		require.Equal(t, days, got.EventsPerDay, "%s: window %s to %s", stage, w[0], w[1])
	}
}

// summary is the summary of the bundle's first window.
func (b *summaryBundle) summary(t *testing.T) audex.Summary {
	t.Helper()
	w := b.windows[0]
	s, err := store.SummarizeEvents(t.Context(), b.pool, b.tenant, audex.Filter{Since: &w[0], Until: &w[1]}, 0)
	require.NoError(t, err)
	return s
}

func (b *summaryBundle) rollUp(t *testing.T) {
	t.Helper()
	_, err := store.RollUpAllSummaries(t.Context(), b.pool, 1500) // several chunks
	require.NoError(t, err)
}

func TestSummaryFromDailyCounts(t *testing.T) {
	t.Parallel()

	t.Run("ExactThroughRollupsLateEventsDeletionsAndPurges", func(t *testing.T) {
		t.Parallel()
		b := setupSummary(t)
		b.requireExact(t, "before any rollup")

		b.rollUp(t)
		var rows int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM summary_counts WHERE tenant_id = $1`, b.tenant).Scan(&rows))
		require.Positive(t, rows, "the rollup wrote daily counts")
		b.requireExact(t, "rolled up")
		require.NotEmpty(t, b.summary(t).TopSourceIPs)

		// The counts of source IPs that migration 00014 adds to the days
		// rolled up before it: run its statement again for this tenant
		// alone (temporary views named as the tables it reads hide the
		// other tenants).
		_, err := b.pool.Exec(t.Context(), `DELETE FROM summary_counts WHERE tenant_id = $1 AND kind = 7`, b.tenant)
		require.NoError(t, err)
		migration, err := fs.ReadFile(migrations.FS, "00014_summary_source_ips.sql")
		require.NoError(t, err)
		up, _, ok := strings.Cut(strings.SplitN(string(migration), "-- +goose Up", 2)[1], "-- +goose Down")
		require.True(t, ok)
		require.NoError(t, pgx.BeginFunc(t.Context(), b.pool, func(tx pgx.Tx) error {
			for _, table := range []string{"events", "summary_marks"} {
				if _, err := tx.Exec(t.Context(), fmt.Sprintf(`CREATE TEMP VIEW %[1]s AS SELECT * FROM public.%[1]s WHERE tenant_id = '%[2]s'`, table, b.tenant)); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(t.Context(), up); err != nil {
				return err
			}
			_, err := tx.Exec(t.Context(), `DROP VIEW pg_temp.events, pg_temp.summary_marks`)
			return err
		}))
		b.requireExact(t, "source IPs counted by the migration")

		b.ingest(t, b.tenant, 700, 0) // late events on rolled-up days
		b.requireExact(t, "late events not rolled up")

		// One rolled-up event and one not.
		actor := audex.Actor{ID: "admin"}
		require.NoError(t, store.DeleteEvent(t.Context(), b.pool, b.tenant, "e1000", actor))
		require.NoError(t, store.DeleteEvent(t.Context(), b.pool, b.tenant, fmt.Sprintf("e%d", b.next), actor))
		b.requireExact(t, "deleted")
		b.rollUp(t)
		b.requireExact(t, "rolled up again")

		// A purge up to the middle of a day, then late events before it.
		p := audex.Purge{TenantID: b.tenant, Before: b.start.Add(3*24*time.Hour + 7*time.Hour)}
		require.NoError(t, store.CreatePurge(t.Context(), b.pool, &p))
		_, _, err = store.StartPurge(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		var after *audex.Position
		for {
			_, last, err := store.PurgeBatch(t.Context(), b.pool, p, after, 500, 0)
			require.NoError(t, err)
			if last == nil {
				break
			}
			after = last
		}
		_, err = store.CompletePurge(t.Context(), b.pool, p.ID)
		require.NoError(t, err)
		b.requireExact(t, "purged")
		b.ingest(t, b.tenant, 300, -2*24*time.Hour)
		b.requireExact(t, "late events before the purge's cut-off")
		b.rollUp(t)
		b.requireExact(t, "rolled up after the purge")
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM summary_counts c JOIN summary_marks m USING (tenant_id)
			WHERE c.tenant_id = $1 AND c.day < m.valid_from`, b.tenant).Scan(&rows))
		require.Zero(t, rows, "the rollup deleted the days that the purge handed over to events")
	})

	t.Run("TopListsWhoseLeadersLeadNoDayAreExact", func(t *testing.T) {
		t.Parallel()
		// Each of three days has 30 actors of its own with 2 events, 300
		// of its own with 1, and 10 steady actors with 1 event every day.
		// The steady ones lead the range (3 events) but rank below the
		// first 200 of every day, so only the last round finds them.
		pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		var events []audex.Event
		add := func(d int, actor string) {
			events = append(events, audex.Event{ID: fmt.Sprintf("e%d", len(events)), OccurredAt: start.Add(time.Duration(d)*24*time.Hour + time.Duration(len(events))*time.Second),
				Action: "x.y", Actor: audex.Actor{ID: actor}, Metadata: []byte("{}")})
		}
		for d := range 3 {
			for i := range 30 {
				add(d, fmt.Sprintf("hero-%d-%02d", d, i))
				add(d, fmt.Sprintf("hero-%d-%02d", d, i))
			}
			for i := range 300 {
				add(d, fmt.Sprintf("filler-%d-%03d", d, i))
			}
			for i := range 10 {
				add(d, fmt.Sprintf("steady-%d", i))
			}
		}
		_, err := store.InsertEvents(t.Context(), pool, tenant, events)
		require.NoError(t, err)
		_, err = store.RollUpAllSummaries(t.Context(), pool, 100_000)
		require.NoError(t, err)
		since, until := start, start.Add(3*24*time.Hour)
		got, err := store.SummarizeEvents(t.Context(), pool, tenant, audex.Filter{Since: &since, Until: &until}, 0)
		require.NoError(t, err)
		var want []audex.ActorCount
		for i := range 10 {
			want = append(want, audex.ActorCount{ActorID: fmt.Sprintf("steady-%d", i), Count: 3})
		}
		require.Equal(t, want, got.TopActors)
		require.EqualValues(t, len(events), got.TotalEvents)
	})
}
