package store_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// TestListsOfATenantTheStatisticsMiss lists the first page (and counts
// the events of a rare action, as an export does) of a tenant
// that bulk-ingested 40,000 events after the planner's statistics were
// gathered, when another tenant was all there was: the statistics then
// say the new tenant holds next to nothing, and a plan that reads all of
// its matching rows and sorts them looks as cheap as one that reads a
// page down an index. Every shape must read at most a bounded number of
// the table's rows for its page (counted by PostgreSQL in the
// transaction), not all of the tenant's (a first page of no filter took
// 815 ms on a tenant of 1,000,000 so, every shape of a range or of the
// keys index 300 ms to 1.5 s).
func TestListsOfATenantTheStatisticsMiss(t *testing.T) {
	t.Parallel()
	pool := storetest.IsolatedPool(t)
	ctx := t.Context()
	// Times are fixed within this month, so that the partitions' statistics
	// are the same on any day: the other tenant's events are of the 18th
	// to the 20th.
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)

	var known []audex.Event
	for i := range 2000 {
		known = append(known, newEvent(fmt.Sprintf("k%05d", i), month.AddDate(0, 0, 19).Add(-time.Duration(i)*time.Minute)))
	}
	_, err := store.InsertEvents(ctx, pool, "known", known)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ANALYZE events")
	require.NoError(t, err)

	// 40,000 events over the 20 days to the 5th of this month at noon:
	// about 9,000 in this month's partition, whose statistics hold the
	// other tenant's events, and 31,000 in last month's, which ANALYZE
	// found empty (there, a count of a rare action read every one of them
	// down the tenant's arrival index). Half of them of one project, one
	// address block and one actor; a few of a rare action, a rare project
	// and a rare block.
	const n = 40_000
	newest := month.AddDate(0, 0, 4).Add(12 * time.Hour)
	var events []audex.Event
	for i := range n {
		e := newEvent(fmt.Sprintf("n%05d", i), newest.Add(-time.Duration(i)*43*time.Second))
		resource, ip := fmt.Sprintf("projects/p%d/docs/d%d", 1+i%7, i), netip.AddrFrom4([4]byte{172, 16, byte(i % 200), byte(i % 250)})
		if i%2 == 0 {
			resource, ip = fmt.Sprintf("projects/p0/docs/d%d", i), netip.AddrFrom4([4]byte{10, 1, byte(i / 256 % 256), byte(i % 256)})
			e.Actor.ID = "sa_0"
		}
		if i%997 == 5 {
			resource, ip = fmt.Sprintf("projects/rare/d%d", i), netip.AddrFrom4([4]byte{10, 9, 9, byte(i % 256)})
			e.Action = "rare.done"
		}
		e.Resource, e.SourceIP = &resource, ptr(ip.String())
		e.RequestID = ptr(fmt.Sprintf("req-%d", i))
		events = append(events, e)
	}
	for start := 0; start < n; start += 5000 {
		_, err := store.InsertEvents(ctx, pool, "new", events[start:start+5000])
		require.NoError(t, err)
	}

	block := func(s string) *netip.Prefix { p := netip.MustParsePrefix(s); return &p }
	for _, tc := range []struct {
		name   string
		filter audex.Filter
	}{
		{"NoFilter", audex.Filter{}},
		{"CommonActor", audex.Filter{ActorID: ptr("sa_0")}},
		{"CommonProject", audex.Filter{ResourcePrefix: ptr("projects/p0/")}},
		{"RareProject", audex.Filter{ResourcePrefix: ptr("projects/rare/")}},
		{"CommonBlock", audex.Filter{SourceIP: block("10.1.0.0/16")}},
		{"RareBlock", audex.Filter{SourceIP: block("10.9.9.0/24")}},
		{"RareAction", audex.Filter{Actions: []string{"rare.done"}}},
		{"RequestID", audex.Filter{RequestID: ptr("req-12345")}},
		{"CommonActorRareAction", audex.Filter{ActorID: ptr("sa_0"), Actions: []string{"rare.done"}}},
	} {
		for _, order := range []audex.Order{audex.OrderDesc, audex.OrderAsc} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, order), func(t *testing.T) {
				var page []audex.Event
				read := rowsReadBy(t, pool, func(tx pgx.Tx) (err error) {
					page, err = store.ListEvents(ctx, tx, "new", tc.filter, order, nil, 101)
					return err
				})
				require.NotEmpty(t, page)
				require.LessOrEqual(t, read, int64(10_000), "rows of events read for a page of 101")
			})
		}
	}
	// A count by a rare action (an export's) reads the keys index, from
	// the tenant's first and last days, read in order too.
	var rare int64
	read := rowsReadBy(t, pool, func(tx pgx.Tx) (err error) {
		rare, err = store.CountEvents(ctx, tx, "new", audex.Filter{Actions: []string{"rare.done"}})
		return err
	})
	require.Equal(t, int64(41), rare)
	require.LessOrEqual(t, read, int64(1_000), "rows of events read to count a rare action")
	var estimate store.Estimate
	read = rowsReadBy(t, pool, func(tx pgx.Tx) (err error) {
		estimate, err = store.EstimateEvents(ctx, tx, "new", audex.Filter{Actions: []string{"rare.done"}})
		return err
	})
	require.Equal(t, store.Estimate{Records: 41}, estimate)
	require.LessOrEqual(t, read, int64(1_000), "rows of events read to estimate a rare action's export")
}

// rowsReadBy returns how many rows of events read does, in a transaction
// of its own, as the session's statistics count them (index entries read
// without a visit to the table are not counted: they are cheap). They are
// not reported before the transaction ends, so one count before and one
// after read, in the same transaction, tell read's rows.
func rowsReadBy(t *testing.T, pool store.DBTX, read func(tx pgx.Tx) error) int64 {
	t.Helper()
	const rowsRead = `SELECT coalesce(sum(coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)), 0)
		FROM pg_stat_xact_user_tables WHERE relname LIKE 'events%'`
	var before, after int64
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(t.Context(), rowsRead).Scan(&before); err != nil {
			return err
		}
		if err := read(tx); err != nil {
			return err
		}
		return tx.QueryRow(t.Context(), rowsRead).Scan(&after)
	})
	require.NoError(t, err)
	return after - before
}

// TestLastAddr checks the last address of blocks, the upper bound of the
// index range that a source_ip block is read from.
func TestLastAddr(t *testing.T) {
	t.Parallel()
	for block, want := range map[string]string{
		"10.30.70.0/23":   "10.30.71.255",
		"10.30.70.77/23":  "10.30.71.255",
		"10.0.0.0/8":      "10.255.255.255",
		"1.2.3.4/32":      "1.2.3.4",
		"0.0.0.0/0":       "255.255.255.255",
		"2001:db8::/32":   "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
		"2001:db8::1/128": "2001:db8::1",
	} {
		require.Equal(t, want, store.LastAddr(netip.MustParsePrefix(block)).String(), block)
	}
}

// TestListPlanSettings checks that a list's statements see its planner
// settings, begun from a pool (the settings sent with the BEGIN) and
// from a transaction (a savepoint), and that the settings end with them.
func TestListPlanSettings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// One connection, so that "after" reads the one the list used.
	pool, err := store.Open(ctx, storetest.IsolatedDatabaseURL(t), store.MaxConns(1))
	require.NoError(t, err)
	defer pool.Close()
	show := func(db store.DBTX) (sort, plans string) {
		require.NoError(t, db.QueryRow(ctx, `SELECT current_setting('enable_sort'), current_setting('plan_cache_mode')`).Scan(&sort, &plans))
		return sort, plans
	}
	for name, db := range map[string]func(t *testing.T) (store.DBTX, func()){
		"Pool": func(t *testing.T) (store.DBTX, func()) { return pool, func() {} },
		"Transaction": func(t *testing.T) (store.DBTX, func()) {
			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			return tx, func() { require.NoError(t, tx.Rollback(ctx)) }
		},
	} {
		t.Run(name, func(t *testing.T) {
			db, done := db(t)
			defer done()
			require.NoError(t, store.WithListPlans(ctx, db, func(tx pgx.Tx) error {
				sort, plans := show(tx)
				require.Equal(t, "off", sort)
				require.Equal(t, "force_generic_plan", plans)
				return nil
			}))
			sort, plans := show(db)
			require.Equal(t, "on", sort)
			require.Equal(t, "force_custom_plan", plans)
		})
	}
}
