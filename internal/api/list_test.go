package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/storetest"
)

// ingestMany posts events in batches of 1000.
func (b *testBundle) ingestMany(t *testing.T, events []map[string]any) {
	t.Helper()
	for start := 0; start < len(events); start += 1000 {
		end := min(start+1000, len(events))
		answer := b.ingest(t, events[start:end]...)
		require.Equal(t, end-start, answer.Accepted)
	}
}

func ids(events []audex.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func TestListPagination(t *testing.T) {
	t.Parallel()

	t.Run("EveryEventExactlyOnceInBothOrders", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		base := time.Date(2026, 4, 20, 12, 0, 0, 0, time.UTC)
		events := make([]map[string]any, 2500)
		for i := range events {
			at := base // most events share one instant
			if i%5 == 0 {
				at = base.Add(time.Duration(i) * time.Millisecond)
			}
			e := event("page.test", "alice")
			e["occurred_at"] = at.Format(time.RFC3339Nano)
			events[i] = e
		}
		b.ingestMany(t, events)

		asc := b.listAll(t, "order=asc&limit=1000")
		desc := b.listAll(t, "limit=1000")
		require.Len(t, asc, 2500)
		require.Len(t, desc, 2500)
		seen := map[string]bool{}
		for _, e := range asc {
			require.False(t, seen[e.ID], "event %s twice", e.ID)
			seen[e.ID] = true
		}
		require.True(t, slices.IsSortedFunc(asc, compareEvents), "asc is in (occurred_at, id) order")
		reversed := slices.Clone(desc)
		slices.Reverse(reversed)
		require.Equal(t, ids(asc), ids(reversed), "desc is asc reversed")
	})

	t.Run("LastPageHasNoCursor", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.ingest(t, event("a", "x"), event("b", "x"))
		res := b.do(t, "GET", "/v1/audit/events?limit=2&actor_id=x", b.key, nil)
		var page listAnswer
		res.decode(t, &page)
		require.Len(t, page.Events, 2)
		require.False(t, page.HasMore)
		require.Nil(t, page.NextCursor)
		require.Contains(t, string(res.body), `"next_cursor":null`)
	})

	t.Run("EmptyListIsAnEmptyArray", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res := b.do(t, "GET", "/v1/audit/events?actor_id=nobody", b.key, nil)
		require.Equal(t, http.StatusOK, res.status)
		require.JSONEq(t, `{"events":[],"next_cursor":null,"has_more":false}`, string(res.body))
	})

	t.Run("CursorKeepsWorkingWithAnotherLimit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			b.ingest(t, event("a", "x"))
		}
		var first listAnswer
		b.do(t, "GET", "/v1/audit/events?actor_id=x&limit=2", b.key, nil).decode(t, &first)
		var rest listAnswer
		b.do(t, "GET", "/v1/audit/events?actor_id=x&limit=10&cursor="+*first.NextCursor, b.key, nil).decode(t, &rest)
		require.Len(t, rest.Events, 3)
	})
}

func compareEvents(a, b audex.Event) int {
	if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
		return c
	}
	switch {
	case a.ID < b.ID:
		return -1
	case a.ID > b.ID:
		return 1
	}
	return 0
}

func TestListFiltersMatchSQL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := storetest.Pool(t)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	actions := []string{"user.login", "user.logout", "doc.read", "doc.write", "doc.delete", "billing:charge"}
	actorTypes := []string{"user", "agent", "service_account"}
	events := make([]map[string]any, 600)
	for i := range events {
		e := map[string]any{
			"occurred_at": base.Add(time.Duration(i*97) * time.Minute).Format(time.RFC3339),
			"action":      actions[i%len(actions)],
			"actor":       map[string]any{"id": fmt.Sprintf("actor-%d", i%7), "type": actorTypes[i%3]},
			"resource":    fmt.Sprintf("projects/p%d/docs/d%d", i%4, i%11),
			"source_ip":   fmt.Sprintf("10.%d.0.%d", i%3, i%200),
			"request_id":  fmt.Sprintf("req-%d", i%50),
		}
		if i%5 != 0 {
			e["target"] = map[string]any{"id": fmt.Sprintf("doc-%d", i%13), "type": []string{"doc", "token"}[i%2]}
		}
		if i%4 != 0 {
			e["success"] = i%3 != 0
		}
		if i == 7 {
			e["resource"] = "projécts/ü\U0010FFFF/x" // prefix bounds across multi-byte characters
		}
		events[i] = e
	}
	b.ingestMany(t, events)

	cases := []struct {
		query string
		where string
	}{
		{"", "true"},
		{"action=doc.read", "action = 'doc.read'"},
		{"action=doc.read,doc.write", "action IN ('doc.read', 'doc.write')"},
		{"action=doc.read&action=user.login", "action IN ('doc.read', 'user.login')"},
		{"action_prefix=doc.", "action LIKE 'doc.%'"},
		{"action_prefix=billing:", "action LIKE 'billing:%'"},
		{"actor_id=actor-3", "actor_id = 'actor-3'"},
		{"identity_id=actor-3&identity_type=agent", "actor_id = 'actor-3' AND actor_type = 'agent'"},
		{"actor_type=service_account", "actor_type = 'service_account'"},
		{"target_id=doc-4", "target_id = 'doc-4'"},
		{"target_type=token", "target_type = 'token'"},
		{"resource_prefix=projects/p1/", "resource LIKE 'projects/p1/%'"},
		{"path_prefix=projects/p2/docs/d1", "resource LIKE 'projects/p2/docs/d1%'"},
		{"resource_prefix=" + url.QueryEscape("projécts/ü"), "resource LIKE 'projécts/ü%'"},
		{"success=true", "success"},
		{"success=false", "NOT success"},
		{"source_ip=10.1.0.7", "source_ip = '10.1.0.7'"},
		{"source_ip=10.2.0.0/16", "source_ip << '10.2.0.0/16'"},
		{"request_id=req-9", "request_id = 'req-9'"},
		{"since=2026-03-10&until=2026-03-20", "occurred_at >= '2026-03-10Z' AND occurred_at < '2026-03-20Z'"},
		{"from=2026-03-10T06:30:00%2B02:00", "occurred_at >= '2026-03-10T04:30:00Z'"},
		{"to=2026-03-05T00:00:00Z&sort_order=asc&sort_by=timestamp", "occurred_at < '2026-03-05Z'"},
		{"actor_id=actor-2&action=doc.write&since=2026-03-05&until=2026-03-25", "actor_id = 'actor-2' AND action = 'doc.write' AND occurred_at >= '2026-03-05Z' AND occurred_at < '2026-03-25Z'"},
		{"actor_type=user&success=false&resource_prefix=projects/p3", "actor_type = 'user' AND NOT success AND resource LIKE 'projects/p3%'"},
		{"order=asc&action_prefix=doc.&since=2026-03-10", "action LIKE 'doc.%' AND occurred_at >= '2026-03-10Z'"},
		{"order=asc&source_ip=10.1.0.0/24&until=2026-03-30", "source_ip << '10.1.0.0/24' AND occurred_at < '2026-03-30Z'"},
		{"resource_prefix=projects/", "resource LIKE 'projects/%'"},
		{"resource_prefix=projects/&action=doc.read", "resource LIKE 'projects/%' AND action = 'doc.read'"},
		{"resource_prefix=projects/p1/&source_ip=10.1.0.0/16", "resource LIKE 'projects/p1/%' AND source_ip << '10.1.0.0/16'"},
	}
	for _, tc := range cases {
		t.Run(tc.query, func(t *testing.T) {
			got := b.listAll(t, tc.query+"&limit=37")
			var want []string
			rows, err := pool.Query(t.Context(), fmt.Sprintf(
				`SELECT id FROM events WHERE tenant_id = $1 AND action NOT LIKE 'audit.%%' AND %s ORDER BY occurred_at DESC, id DESC`, tc.where), b.tenant)
			require.NoError(t, err)
			for rows.Next() {
				var id string
				require.NoError(t, rows.Scan(&id))
				want = append(want, id)
			}
			require.NoError(t, rows.Err())
			gotIDs := ids(got)
			if slices.Contains([]string{"asc"}, orderOf(tc.query)) {
				slices.Reverse(gotIDs)
			}
			require.Equal(t, want, gotIDs)
			require.NotEmpty(t, want, "the case should select something")
		})
	}
}

func orderOf(query string) string {
	v, _ := url.ParseQuery(query)
	if o := v.Get("sort_order"); o != "" {
		return o
	}
	return v.Get("order")
}
