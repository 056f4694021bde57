package store_test

import (
	"context"
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

// TestListOfARange pages through lists filtered by a range (a prefix, an
// address block) or by values of the keys index (actions, an action
// prefix, actor and target types, a request id), at several page sizes,
// in both orders, and requires exactly the ids a plain SQL statement
// finds. The data and the page sizes make each way of reading a range or
// keys run: few events (read whole from the range's index, sorted), few
// values (merged pages), many values common enough to fill a page from the
// first rows read, many values rarer than that (read on down the list
// order, or from the range's or the keys index: pages of 2, for which the
// rarer ranges are not few events), and none; and lists by a rare actor
// with more filters (read whole from the actor's index, then filtered).
func TestListOfARange(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var events []audex.Event
	for i := range 3000 {
		// Times repeat (every 600th event shares one), so that ids break
		// ties across pages.
		e := newEvent(fmt.Sprintf("e%04d", i), start.Add(time.Duration(i*37%600)*time.Minute))
		var r string
		switch m := i * 37 % 600; {
		case m >= 560 && i%22 == 2 || m < 500 && i%40 == 2:
			// 8 of the newest 200, none in the 300 before them, then
			// 2.5%: the first rows read promise more than the next give.
			r = fmt.Sprintf("fading/%04d", i)
		case i%4 == 0:
			r = fmt.Sprintf("few/%d", i%3) // 25%, 3 values
		case i%20 == 7:
			// 5%, 150 values: more than a page of 2 reads whole (100),
			// fewer than the first rows read down the list fill it with.
			r = fmt.Sprintf("thin/%04d", i)
		case i%25 == 1:
			r = fmt.Sprintf("rare/%04d", i) // 4%, 120 values
		case i%25 == 3 && i < 1500:
			r = fmt.Sprintf("old/%04d", i) // 2% of the oldest half's ids, 60 values
		case i%25 == 13 || i%25 == 14:
			// 6%, 2 values: more than a page of 2 reads whole, too few
			// for the first rows read down the list order to fill it.
			r = fmt.Sprintf("pair/%d", i%2)
		default:
			r = fmt.Sprintf("many/%03d", i%100) // about 64%, 100 values
		}
		e.Resource = &r
		if i%50 == 49 {
			e.Resource = nil // rows that no range holds, read down the list order
		}
		ip := netip.AddrFrom4([4]byte{10, byte(i % 3), byte(i % 200), byte(i % 7)}).String()
		if i%50 == 48 {
			ip = fmt.Sprintf("2001:db8:0:%x::%x", i%3, i) // 2%, IPv6
		}
		e.SourceIP = &ip
		e.Action = []string{"doc.read", "doc.write", "user.login", "key.rotated"}[min(i%40, 3)]
		if i%97 == 0 {
			e.Actor.ID = "rare-actor" // 31 events, of every action
		}
		e.Success = ptr(i%3 != 0)
		e.Actor.Type = ptr("user")
		if i%211 == 5 {
			e.Actor.Type = ptr("robot") // 14 events
		}
		if i%3 == 0 {
			e.Target = &audex.Target{ID: ptr("t1"), Type: ptr([]string{"doc", "doc", "key"}[i%9/3])}
		}
		e.RequestID = ptr(fmt.Sprintf("req-%d", i%1000)) // 3 events each
		events = append(events, e)
	}
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	prefix := func(p string) audex.Filter { return audex.Filter{ResourcePrefix: &p} }
	block := func(b string) audex.Filter {
		p := netip.MustParsePrefix(b)
		return audex.Filter{SourceIP: &p}
	}
	cases := []listCase{
		{"ManyValues", prefix("many/"), "starts_with(resource, $2)", "many/"},
		{"FewValues", prefix("few/"), "starts_with(resource, $2)", "few/"},
		{"OneValue", prefix("few/1"), "starts_with(resource, $2)", "few/1"},
		{"RareOfManyValues", prefix("rare/"), "starts_with(resource, $2)", "rare/"},
		{"ThinOfManyValues", prefix("thin/"), "starts_with(resource, $2)", "thin/"},
		{"RareRangeAndSuccess", audex.Filter{ResourcePrefix: ptr("rare/"), Success: ptr(true)}, "starts_with(resource, $2) AND success", "rare/"},
		{"FadingWithAGap", prefix("fading/"), "starts_with(resource, $2)", "fading/"},
		{"OldOnly", prefix("old/"), "starts_with(resource, $2)", "old/"},
		{"PairOfValues", prefix("pair/"), "starts_with(resource, $2)", "pair/"},
		{"SomeValues", prefix("many/05"), "starts_with(resource, $2)", "many/05"},
		{"NoValue", prefix("none/"), "starts_with(resource, $2)", "none/"},
		{"WideBlock", block("10.1.0.0/16"), "source_ip <<= $2::inet", "10.1.0.0/16"},
		{"NarrowBlockOfManyAddresses", block("10.2.0.0/20"), "source_ip <<= $2::inet", "10.2.0.0/20"},
		{"IPv6Block", block("2001:db8:0:1::/64"), "source_ip <<= $2::inet", "2001:db8:0:1::/64"},
		{"WideIPv6Block", block("2001:db8::/32"), "source_ip <<= $2::inet", "2001:db8::/32"},
		{"RareActorAndAction", audex.Filter{ActorID: ptr("rare-actor"), Actions: []string{"doc.write"}}, "actor_id = 'rare-actor' AND action = $2", "doc.write"},
		{"RareActorAndRange", audex.Filter{ActorID: ptr("rare-actor"), ResourcePrefix: ptr("many/")}, "actor_id = 'rare-actor' AND starts_with(resource, $2)", "many/"},
		{"RareActorInADay", audex.Filter{ActorID: ptr("rare-actor"), Since: ptr(start.Add(3 * time.Hour)), Until: ptr(start.Add(5 * time.Hour)), Success: ptr(true)},
			"actor_id = 'rare-actor' AND success AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '2 hours'", start.Add(3 * time.Hour)},
		{"CommonActorAndAction", audex.Filter{ActorID: ptr("alice"), Actions: []string{"doc.write"}}, "actor_id = 'alice' AND action = $2", "doc.write"},
		{"SeveralActions", audex.Filter{Actions: []string{"user.login", "key.rotated"}}, "action = ANY($2)", []string{"user.login", "key.rotated"}},
		{"SeveralRareActions", audex.Filter{Actions: []string{"user.login", "doc.write"}}, "action = ANY($2)", []string{"user.login", "doc.write"}},
		{"CommonAction", audex.Filter{Actions: []string{"key.rotated"}}, "action = $2", "key.rotated"},
		{"RareAction", audex.Filter{Actions: []string{"doc.write"}}, "action = $2", "doc.write"},
		{"ActionPrefix", audex.Filter{ActionPrefix: ptr("doc.")}, "starts_with(action, $2)", "doc."},
		{"ActionPrefixOfNone", audex.Filter{ActionPrefix: ptr("nothing.")}, "starts_with(action, $2)", "nothing."},
		{"ActionPrefixAndAction", audex.Filter{ActionPrefix: ptr("doc."), Actions: []string{"doc.read", "user.login"}}, "action = $2", "doc.read"},
		{"RareActorType", audex.Filter{ActorType: ptr("robot")}, "actor_type = $2", "robot"},
		{"RareActorTypeAndAction", audex.Filter{ActorType: ptr("robot"), Actions: []string{"key.rotated"}}, "actor_type = 'robot' AND action = $2", "key.rotated"},
		{"TargetTypeAndRange", audex.Filter{TargetType: ptr("key"), ResourcePrefix: ptr("rare/")}, "target_type = 'key' AND starts_with(resource, $2)", "rare/"},
		{"RequestID", audex.Filter{RequestID: ptr("req-7")}, "request_id = $2", "req-7"},
		{"RequestIDAndAction", audex.Filter{RequestID: ptr("req-40"), Actions: []string{"doc.read"}}, "request_id = 'req-40' AND action = $2", "doc.read"},
	}
	requireListsMatch(t, pool, tenant, store.ListEvents, cases)
}

// TestListByKeysOverDays pages through lists by values of the keys index
// whose events lie over 100 days (and across months, and one before
// 1970), so that the keys index is read all days at once (128 at most)
// and, through ListByKeyDays, a day, then 8, 64 and 128 days at a time,
// skipping days without events, and the ranges (since, until) bound those
// reads; every page must hold exactly the ids that plain SQL finds.
func TestListByKeysOverDays(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var events []audex.Event
	for i := range 2400 {
		e := newEvent(fmt.Sprintf("k%04d", i), start.Add(time.Duration(i)*time.Hour))
		switch {
		case i%400 == 7:
			e.Action = "rare.done" // 6 events, 16 days apart
		case i%50 == 3:
			e.Action = "medium.done" // 2%: one a day or two
		case i%2 == 0:
			e.Action = "common.done"
		}
		e.Actor.Type = ptr("user")
		if i%700 == 1 {
			e.Actor.Type = ptr("robot")
		}
		e.RequestID = ptr(fmt.Sprintf("req-%d", i%1200))
		events = append(events, e)
	}
	old := newEvent("before-1970", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC))
	old.Action = "rare.done"
	events = append(events, old)
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	since, until := start.Add(500*time.Hour), start.Add(1900*time.Hour)
	cases := []listCase{
		{"RareAction", audex.Filter{Actions: []string{"rare.done"}}, "action = $2", "rare.done"},
		{"MediumAction", audex.Filter{Actions: []string{"medium.done"}}, "action = $2", "medium.done"},
		{"RareActionInARange", audex.Filter{Actions: []string{"rare.done"}, Since: &since, Until: &until},
			"action = 'rare.done' AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '1400 hours'", since},
		{"MediumActionSince", audex.Filter{Actions: []string{"medium.done"}, Since: &since}, "action = 'medium.done' AND occurred_at >= $2", since},
		{"RarePrefix", audex.Filter{ActionPrefix: ptr("rare.")}, "starts_with(action, $2)", "rare."},
		{"RareActorType", audex.Filter{ActorType: ptr("robot")}, "actor_type = $2", "robot"},
		{"RequestID", audex.Filter{RequestID: ptr("req-7")}, "request_id = $2", "req-7"},
		{"TwoRareValues", audex.Filter{Actions: []string{"rare.done", "medium.done"}, ActorType: ptr("robot")},
			"action IN ('rare.done', 'medium.done') AND actor_type = $2", "robot"},
	}
	requireListsMatch(t, pool, tenant, store.ListEvents, cases)
	// The reads of a day, then 8, 64, ... days at a time, which keep a
	// page of a medium value cheap, run here for values too rare to be
	// read so by ListEvents.
	t.Run("ByDays", func(t *testing.T) { requireListsMatch(t, pool, tenant, store.ListByKeyDays, cases) })
}

// TestListOfARangeOverDays pages through lists by ranges (a prefix, an
// address block) of many values whose events lie over 100 days (across
// months, some days without any), too many for a page of 2 to read whole
// and too rare for the first rows read down the list order to fill it,
// so that ListEvents reads them from the range's index a day, then 8 and
// 64 days at a time; and through ListByRangeDays, which reads so for
// every page size. Every page must hold exactly the ids that plain SQL
// finds.
func TestListOfARangeOverDays(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []audex.Event
	for i := range 12000 {
		e := newEvent(fmt.Sprintf("d%05d", i), start.Add(time.Duration(i)*12*time.Minute))
		day := i / 120
		switch {
		case i%100 == 3:
			e.Resource = ptr(fmt.Sprintf("spread/%04d", i)) // 1%, a value each
		case i%50 == 7 && (day < 40 || day >= 70):
			e.Resource = ptr(fmt.Sprintf("gap/%04d", i)) // 2%, none on days 40 to 69
		}
		if i%100 == 11 {
			e.SourceIP = ptr(netip.AddrFrom4([4]byte{10, 9, byte(i / 256), byte(i)}).String()) // 1%
		}
		e.Success = ptr(i%3 != 0)
		events = append(events, e)
	}
	old := newEvent("before-1970", time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC))
	old.Resource = ptr("spread/old")
	events = append(events, old)
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	since, until := start.Add(500*time.Hour), start.Add(1900*time.Hour)
	block := netip.MustParsePrefix("10.9.0.0/16")
	cases := []listCase{
		{"Spread", audex.Filter{ResourcePrefix: ptr("spread/")}, "starts_with(resource, $2)", "spread/"},
		{"WithAGap", audex.Filter{ResourcePrefix: ptr("gap/")}, "starts_with(resource, $2)", "gap/"},
		{"Block", audex.Filter{SourceIP: &block}, "source_ip <<= $2::inet", "10.9.0.0/16"},
		{"SpreadAndSuccess", audex.Filter{ResourcePrefix: ptr("spread/"), Success: ptr(true)}, "success AND starts_with(resource, $2)", "spread/"},
		{"SpreadInARange", audex.Filter{ResourcePrefix: ptr("spread/"), Since: &since, Until: &until},
			"starts_with(resource, 'spread/') AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '1400 hours'", since},
	}
	requireListsMatch(t, pool, tenant, store.ListEvents, cases)
	t.Run("ByDays", func(t *testing.T) { requireListsMatch(t, pool, tenant, store.ListByRangeDays, cases) })
}

// TestListByACommonKey pages through lists by values of the keys index
// common enough (5% of a tenant of 24,000 events) that a page reads on
// down the list order after its first read rather than read the keys
// index, and by one as common among the newest events that then fades,
// so that the read down the list order stops and the keys index, a day
// and then more days at a time, gives the rest.
func TestListByACommonKey(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var events []audex.Event
	for i := range 24000 {
		e := newEvent(fmt.Sprintf("c%05d", i), start.Add(time.Duration(i)*2*time.Minute))
		if i%20 == 0 {
			e.Action = "five.pct"
		}
		if i%20 == 1 && (i > 22500 || i%1000 == 1) {
			e.Action = "fading"
		}
		events = append(events, e)
	}
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)
	requireListsMatch(t, pool, tenant, store.ListEvents, []listCase{
		{"FivePercent", audex.Filter{Actions: []string{"five.pct"}}, "action = $2", "five.pct"},
		{"Fading", audex.Filter{Actions: []string{"fading"}}, "action = $2", "fading"},
	})
}

// listCase is a filter and the same filter in SQL ($2 its argument).
type listCase struct {
	name   string
	filter audex.Filter
	where  string
	arg    any
}

// listFunc lists a page of events as store.ListEvents does.
type listFunc func(ctx context.Context, db store.DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error)

// requireListsMatch pages through the tenant's events with list and each
// case's filter, in both orders and pages of 2, 10, 100 and 2,000 (an export's), and requires
// the ids that the case's SQL finds, in order.
func requireListsMatch(t *testing.T, pool store.DBTX, tenant string, list listFunc, cases []listCase) {
	t.Helper()
	for _, tc := range cases {
		for _, order := range []audex.Order{audex.OrderAsc, audex.OrderDesc} {
			for _, limit := range []int{2, 10, 100, 2000} {
				t.Run(fmt.Sprintf("%s/%s/%d", tc.name, order, limit), func(t *testing.T) {
					dir := map[audex.Order]string{audex.OrderAsc: "ASC", audex.OrderDesc: "DESC"}[order]
					rows, err := pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 AND `+tc.where+`
						ORDER BY occurred_at `+dir+`, id `+dir, tenant, tc.arg)
					require.NoError(t, err)
					want, err := pgx.CollectRows(rows, pgx.RowTo[string])
					require.NoError(t, err)
					if limit == 2 && len(want) > 300 {
						t.Skip("pages of 2 are for the rarer ranges")
					}
					got := []string{}
					var after *audex.Position
					for {
						page, err := list(t.Context(), pool, tenant, tc.filter, order, after, limit)
						require.NoError(t, err)
						for _, e := range page {
							got = append(got, e.ID)
						}
						if len(page) < limit {
							break
						}
						last := page[len(page)-1]
						after = &audex.Position{OccurredAt: last.OccurredAt, ID: last.ID}
					}
					require.Equal(t, want, got)
				})
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestCheaperByDays checks when a list by values of the keys index is read
// a day at a time rather than down the list order: when the read in order
// would look at more than keysWalkRowsPerPageRow rows per page row, or at
// more than sortedRowCost times an average day's matches, over the days
// from the tenant's first event to its last.
func TestCheaperByDays(t *testing.T) {
	t.Parallel()
	pool := storetest.Pool(t)
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tenDays, oneDay := storetest.NewTenant(t), storetest.NewTenant(t)
	for tenant, last := range map[string]time.Time{tenDays: start.AddDate(0, 0, 9), oneDay: start.Add(time.Hour)} {
		_, err := store.InsertEvents(t.Context(), pool, tenant, []audex.Event{newEvent("first", start), newEvent("last", last)})
		require.NoError(t, err)
	}
	for _, c := range []struct {
		name           string
		tenant         string
		matches, total int64
		want           bool
	}{
		{"read in order: 5,000 rows, a day holds 2,000 matches", tenDays, 20_000, 1_000_000, false},
		{"by days: 10,000 rows in order", tenDays, 10_000, 1_000_000, true},
		{"by days: 5,000 rows in order, a day holds 600 matches", tenDays, 6_000, 300_000, true},
		{"read in order: the same value, all of it in a day", oneDay, 6_000, 300_000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			byDays, err := store.CheaperByDays(t.Context(), pool, c.tenant, 100, c.matches, c.total)
			require.NoError(t, err)
			require.Equal(t, c.want, byDays)
		})
	}
}
