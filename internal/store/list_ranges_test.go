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

// TestListOfARange pages through lists filtered by a range (a prefix, an
// address block) or by several actions, at several page sizes, in both
// orders, and requires exactly the ids a plain SQL statement finds. The
// data and the page sizes make each way of reading a range run: few
// events (read whole from the range's index, sorted), few values (merged
// pages), many values common enough to fill a page from the first rows
// read, many values rarer than that (read on down the list order, or from
// the range's index: pages of 2, for which the rarer ranges are not few
// events), and none; and lists by a rare actor with more filters (read
// whole from the actor's index, then filtered).
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
		default:
			r = fmt.Sprintf("many/%03d", i%100) // about 69%, 100 values
		}
		e.Resource = &r
		ip := netip.AddrFrom4([4]byte{10, byte(i % 3), byte(i % 200), byte(i % 7)}).String()
		e.SourceIP = &ip
		e.Action = []string{"doc.read", "doc.write", "user.login", "key.rotated"}[min(i%40, 3)]
		if i%97 == 0 {
			e.Actor.ID = "rare-actor" // 31 events, of every action
		}
		e.Success = ptr(i%3 != 0)
		events = append(events, e)
	}
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	prefix := func(p string) audex.Filter { return audex.Filter{ResourcePrefix: &p} }
	block := func(b string) audex.Filter {
		p := netip.MustParsePrefix(b)
		return audex.Filter{SourceIP: &p}
	}
	cases := []struct {
		name   string
		filter audex.Filter
		where  string // the filter in SQL, $2 its argument
		arg    any
	}{
		{"ManyValues", prefix("many/"), "starts_with(resource, $2)", "many/"},
		{"FewValues", prefix("few/"), "starts_with(resource, $2)", "few/"},
		{"OneValue", prefix("few/1"), "starts_with(resource, $2)", "few/1"},
		{"RareOfManyValues", prefix("rare/"), "starts_with(resource, $2)", "rare/"},
		{"ThinOfManyValues", prefix("thin/"), "starts_with(resource, $2)", "thin/"},
		{"RareRangeAndSuccess", audex.Filter{ResourcePrefix: ptr("rare/"), Success: ptr(true)}, "starts_with(resource, $2) AND success", "rare/"},
		{"FadingWithAGap", prefix("fading/"), "starts_with(resource, $2)", "fading/"},
		{"OldOnly", prefix("old/"), "starts_with(resource, $2)", "old/"},
		{"SomeValues", prefix("many/05"), "starts_with(resource, $2)", "many/05"},
		{"NoValue", prefix("none/"), "starts_with(resource, $2)", "none/"},
		{"WideBlock", block("10.1.0.0/16"), "source_ip <<= $2::inet", "10.1.0.0/16"},
		{"NarrowBlockOfManyAddresses", block("10.2.0.0/20"), "source_ip <<= $2::inet", "10.2.0.0/20"},
		{"RareActorAndAction", audex.Filter{ActorID: ptr("rare-actor"), Actions: []string{"doc.write"}}, "actor_id = 'rare-actor' AND action = $2", "doc.write"},
		{"RareActorAndRange", audex.Filter{ActorID: ptr("rare-actor"), ResourcePrefix: ptr("many/")}, "actor_id = 'rare-actor' AND starts_with(resource, $2)", "many/"},
		{"RareActorInADay", audex.Filter{ActorID: ptr("rare-actor"), Since: ptr(start.Add(3 * time.Hour)), Until: ptr(start.Add(5 * time.Hour)), Success: ptr(true)},
			"actor_id = 'rare-actor' AND success AND occurred_at >= $2 AND occurred_at < $2::timestamptz + interval '2 hours'", start.Add(3 * time.Hour)},
		{"CommonActorAndAction", audex.Filter{ActorID: ptr("alice"), Actions: []string{"doc.write"}}, "actor_id = 'alice' AND action = $2", "doc.write"},
		{"SeveralActions", audex.Filter{Actions: []string{"user.login", "key.rotated"}}, "action = ANY($2)", []string{"user.login", "key.rotated"}},
	}
	for _, tc := range cases {
		for _, order := range []audex.Order{audex.OrderAsc, audex.OrderDesc} {
			for _, limit := range []int{2, 10, 100} {
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
						page, err := store.ListEvents(t.Context(), pool, tenant, tc.filter, order, after, limit)
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
