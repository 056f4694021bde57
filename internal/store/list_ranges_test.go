package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestListOfARange(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	// 100 resources under "many/" (more than one page merges), 3 under
	// "few/", spread over the same times.
	var events []audex.Event
	for i := range 600 {
		e := newEvent(fmt.Sprintf("e%04d", i), start.Add(time.Duration(i*37%600)*time.Minute))
		r := fmt.Sprintf("many/%03d", i%100)
		if i%4 == 0 {
			r = fmt.Sprintf("few/%d", i%3)
		}
		e.Resource = &r
		events = append(events, e)
	}
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	for _, prefix := range []string{"many/", "few/", "few/1", "many/05", "none/"} {
		for _, order := range []audex.Order{audex.OrderAsc, audex.OrderDesc} {
			t.Run(prefix+string(order), func(t *testing.T) {
				dir := map[audex.Order]string{audex.OrderAsc: "ASC", audex.OrderDesc: "DESC"}[order]
				rows, err := pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 AND starts_with(resource, $2)
					ORDER BY occurred_at `+dir+`, id `+dir, tenant, prefix)
				require.NoError(t, err)
				want, err := pgx.CollectRows(rows, pgx.RowTo[string])
				require.NoError(t, err)
				got := []string{}
				var after *audex.Position
				for {
					page, err := store.ListEvents(t.Context(), pool, tenant, audex.Filter{ResourcePrefix: &prefix}, order, after, 7)
					require.NoError(t, err)
					for _, e := range page {
						got = append(got, e.ID)
					}
					if len(page) < 7 {
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
