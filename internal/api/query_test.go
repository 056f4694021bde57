package api_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// seed stores n varied events for the bundle's tenant directly through the
// store (faster than HTTP for big sets), spread over the days before end.
func (b *testBundle) seed(t *testing.T, n int, end time.Time) {
	t.Helper()
	actions := []string{"user.login", "user.logout", "doc.read", "doc.write", "billing:charge"}
	for start := 0; start < n; start += 1000 {
		batch := make([]audex.Event, 0, 1000)
		for i := start; i < min(start+1000, n); i++ {
			typ, name := []string{"user", "agent"}[i%2], fmt.Sprintf("Name %d", i%9)
			e := audex.Event{
				ID:         audex.NewID("evt"),
				OccurredAt: end.Add(-time.Duration((i*37)%(25*24*60)) * time.Minute).Add(-time.Duration(i) * time.Microsecond),
				Action:     actions[(i*7)%len(actions)],
				Actor:      audex.Actor{ID: fmt.Sprintf("actor-%d", (i*i)%23), Type: &typ, Name: &name},
				Metadata:   json.RawMessage(fmt.Sprintf(`{"i":%d,"s":"x,\"y\"\nz"}`, i)),
			}
			if i%3 != 0 {
				id, ttype := fmt.Sprintf("doc-%d", (i*3)%17), "doc"
				e.Target = &audex.Target{ID: &id, Type: &ttype}
			}
			if i%4 != 0 {
				res := fmt.Sprintf("projects/p%d/docs/d%d", i%5, (i*5)%31)
				e.Resource = &res
			}
			if i%5 != 0 {
				ok := i%7 != 0
				e.Success = &ok
			}
			if i%6 != 0 {
				ip := fmt.Sprintf("10.1.%d.%d", i%3, (i*i)%29)
				e.SourceIP = &ip
			}
			batch = append(batch, e)
		}
		_, err := store.InsertEvents(t.Context(), b.pool, b.tenant, batch)
		require.NoError(t, err)
	}
}

// download posts an export request and returns the raw (decompressed) body.
func (b *testBundle) download(t *testing.T, body map[string]any, gz bool) (*http.Response, []byte) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", b.url+"/v1/audit/export", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+b.key)
	req.Header.Set("Content-Type", "application/json")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	res, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
	require.NoError(t, err)
	defer res.Body.Close()
	var r io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(res.Body)
		require.NoError(t, err)
		r = zr
	}
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	return res, out
}

func TestDownload(t *testing.T) {
	t.Parallel()

	t.Run("EveryFormatHoldsExactlyWhatListReturns", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		end := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		b.seed(t, 200_000, end)
		since, until := "2026-04-10T00:00:00Z", "2026-04-28T12:00:00Z"
		want := ids(b.listAll(t, "order=asc&limit=1000&action=doc.read,doc.write,user.login&since="+since+"&until="+until))
		require.Greater(t, len(want), 50_000)

		request := func(f string) map[string]any {
			return map[string]any{"format": f, "since": since, "until": until,
				"filters": map[string]any{"action": []string{"doc.read", "doc.write", "user.login"}}}
		}
		res, body := b.download(t, request("ndjson"), false)
		require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
		require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
		require.Contains(t, res.Header.Get("Content-Disposition"), "attachment;")
		var fromNDJSON []string
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e audex.Event
			require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
			fromNDJSON = append(fromNDJSON, e.ID)
		}
		requireSameIDs(t, want, fromNDJSON)

		res, body = b.download(t, request("json"), true)
		require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
		var fromJSON []audex.Event
		require.NoError(t, json.Unmarshal(body, &fromJSON))
		requireSameIDs(t, want, ids(fromJSON))

		_, body = b.download(t, request("csv"), true)
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, format.CSVColumns, rows[0])
		fromCSV := make([]string, 0, len(rows)-1)
		for _, row := range rows[1:] {
			fromCSV = append(fromCSV, row[0])
		}
		requireSameIDs(t, want, fromCSV)
	})

	t.Run("FormulasAreNeutralisedInCSVOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Identifiers cannot start like a formula (ingest refuses them), so
		// free text carries the formulas and the identifiers come out of
		// CSV exactly as the API writes them, inner - and all.
		values := []string{"=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1)"}
		for i, v := range values {
			e := event("doc.read-"+strconv.Itoa(i), "user-"+strconv.Itoa(i))
			e["id"] = "evt-csv-" + strconv.Itoa(i)
			e["target"] = map[string]any{"id": "doc:1-" + strconv.Itoa(i), "name": v}
			e["resource"] = v
			b.ingest(t, e)
		}
		req := map[string]any{"since": "2020-01-01", "until": "2100-01-01", "filters": map[string]any{"action_prefix": "doc.read-"}}
		_, body := b.download(t, req, false) // csv is the default
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 5)
		col := func(row []string, name string) string {
			return row[slices.Index(format.CSVColumns, name)]
		}
		var names []string
		for _, row := range rows[1:] {
			i := strings.TrimPrefix(col(row, "id"), "evt-csv-")
			require.Equal(t, "doc.read-"+i, col(row, "action"))
			require.Equal(t, "user-"+i, col(row, "actor_id"))
			require.Equal(t, "doc:1-"+i, col(row, "target_id"))
			require.Equal(t, col(row, "target_name"), col(row, "resource"), "resource neutralised like target_name")
			names = append(names, col(row, "target_name"))
		}
		require.ElementsMatch(t, []string{"'=cmd|' /C calc'!A0", "'+1", "'-1", "'@SUM(1)"}, names)

		for _, f := range []string{"ndjson", "json"} {
			req["format"] = f
			_, body := b.download(t, req, false)
			require.Contains(t, string(body), `"name":"=cmd|' /C calc'!A0"`, f)
			require.Contains(t, string(body), `"resource":"@SUM(1)"`, f)
		}
	})

	t.Run("NoMatchIsAnEmptyDocument", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		req := map[string]any{"format": "json", "since": "2020-01-01", "until": "2020-01-02"}
		res, body := b.download(t, req, false)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.JSONEq(t, `[]`, string(body))
	})

	t.Run("BadRequestsAreClearErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			body  string
			field string
		}{
			{`{"until":"2026-01-02"}`, "since"},
			{`{"since":"2026-01-01"}`, "until"},
			{`{"since":"2026-01-02","until":"2026-01-01"}`, "until"},
			{`{"since":"2026-01-01","until":"2026-01-02","format":"xml"}`, "format"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"from":"2026-01-01"}}`, "filters.from"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"limit":5}}`, "filters.limit"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"identity_id":"a"}}`, "filters.identity_id"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"success":"true"}}`, "filters.success"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"action":[]}}`, "filters.action"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"actor_id":5}}`, "filters.actor_id"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"success":null}}`, "filters.success"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"actor_id": null}}`, "filters.actor_id"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"action":null}}`, "filters.action"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"source_ip":"nope"}}`, "filters.source_ip"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":{"colour":"red"}}`, "filters.colour"},
			{`{"since":"2026-01-01","until":"2026-01-02","filters":[]}`, "filters"},
			{`{"since":"2026-01-01","until":"2026-01-02","extra":1}`, "extra"},
		} {
			res := b.do(t, "POST", "/v1/audit/export", b.key, tc.body)
			require.Equal(t, http.StatusBadRequest, res.status, tc.body)
			require.Equal(t, tc.field, res.errorBody(t).Field, tc.body)
			require.Empty(t, res.header.Get("Content-Disposition"))
		}
	})

	t.Run("ClientThatHangsUpLeavesNoQueryRunning", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.seed(t, 100_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
		data := `{"format":"ndjson","since":"2020-01-01","until":"2100-01-01"}`
		req, _ := http.NewRequest("POST", b.url+"/v1/audit/export", strings.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+b.key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		first := make([]byte, 4096)
		_, err = io.ReadFull(res.Body, first)
		require.NoError(t, err, "the first bytes arrive while the query runs")
		res.Body.Close() // hang up mid-download

		// Neither a statement nor the download's transaction is left.
		pool := storetest.Pool(t)
		require.Eventually(t, func() bool {
			var running int
			err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND state IN ('active', 'idle in transaction')
				AND query LIKE '%FROM events WHERE%ORDER BY occurred_at%' AND pid <> pg_backend_pid()`).Scan(&running)
			return err == nil && running == 0
		}, 10*time.Second, 50*time.Millisecond)
	})
}

func TestSummary(t *testing.T) {
	t.Parallel()
	b, other := setup(t), setup(t)
	now := time.Now().UTC()
	b.seed(t, 3000, now)
	other.seed(t, 500, now)
	pool := storetest.Pool(t)

	sqlSummary := func(where string, args ...any) (total, ok, failed int64, actions map[string]int64) {
		args = append([]any{b.tenant}, args...)
		require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success)
			FROM events WHERE tenant_id = $1 AND `+where, args...).Scan(&total, &ok, &failed))
		rows, err := pool.Query(t.Context(), `SELECT action, count(*) FROM events WHERE tenant_id = $1 AND `+where+` GROUP BY action`, args...)
		require.NoError(t, err)
		actions = map[string]int64{}
		for rows.Next() {
			var a string
			var n int64
			require.NoError(t, rows.Scan(&a, &n))
			actions[a] = n
		}
		return total, ok, failed, actions
	}
	// topSQL is the top 10 of the column, named key in the answer.
	topSQL := func(key, column, where string, args ...any) []map[string]any {
		args = append([]any{b.tenant}, args...)
		rows, err := pool.Query(t.Context(), fmt.Sprintf(`SELECT %s, count(*) FROM events WHERE tenant_id = $1 AND %s IS NOT NULL AND %s
			GROUP BY 1 ORDER BY 2 DESC, %s COLLATE "C" LIMIT 10`, column, column, where, column), args...)
		require.NoError(t, err)
		var out []map[string]any
		for rows.Next() {
			var v string
			var n int64
			require.NoError(t, rows.Scan(&v, &n))
			out = append(out, map[string]any{key: v, "count": float64(n)})
		}
		require.NotEmpty(t, out)
		return out
	}
	daysSQL := func(where string, args ...any) []audex.DayCount {
		args = append([]any{b.tenant}, args...)
		rows, err := pool.Query(t.Context(), `SELECT date_trunc('day', occurred_at AT TIME ZONE 'UTC')::date::text, count(*), count(*) FILTER (WHERE success IS FALSE)
			FROM events WHERE tenant_id = $1 AND `+where+` GROUP BY 1 ORDER BY 1`, args...)
		require.NoError(t, err)
		days, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (d audex.DayCount, err error) {
			return d, r.Scan(&d.Day, &d.Events, &d.Failed)
		})
		require.NoError(t, err)
		return days
	}
	type summary struct {
		TotalEvents      int64            `json:"total_events"`
		SuccessfulEvents int64            `json:"successful_events"`
		FailedEvents     int64            `json:"failed_events"`
		ActionsBreakdown map[string]int64 `json:"actions_breakdown"`
		TopActors        []map[string]any `json:"top_actors"`
		TopTargets       []map[string]any `json:"top_targets"`
		TopResources     []map[string]any `json:"top_resources"`
		TopSourceIPs     []map[string]any `json:"top_source_ips"`
		EventsPerDay     []audex.DayCount `json:"events_per_day"`
	}

	for _, tc := range []struct {
		name, query, where string
		args               []any
	}{
		{"DefaultIsTheLast30Days", "", "occurred_at >= now() - interval '30 days'", nil}, // audex's own audit.key_created too
		{"TimeRange", "since=" + now.AddDate(0, 0, -10).Format(time.RFC3339) + "&until=" + now.AddDate(0, 0, -3).Format(time.RFC3339),
			"occurred_at >= $2 AND occurred_at < $3", []any{now.AddDate(0, 0, -10).Truncate(time.Second), now.AddDate(0, 0, -3).Truncate(time.Second)}},
		{"WithFilters", "since=2020-01-01&actor_type=agent&resource_prefix=projects/p2", "occurred_at >= '2020-01-01Z' AND actor_type = 'agent' AND resource LIKE 'projects/p2%'", nil},
	} {
		t.Run(tc.name+"MatchesSQL", func(t *testing.T) {
			res := b.do(t, "GET", "/v1/audit/summary?"+tc.query, b.key, nil)
			require.Equal(t, http.StatusOK, res.status, "%s", res.body)
			var got summary
			res.decode(t, &got)
			total, ok, failed, actions := sqlSummary(tc.where, tc.args...)
			require.Equal(t, total, got.TotalEvents)
			require.Positive(t, got.TotalEvents)
			require.Equal(t, ok, got.SuccessfulEvents)
			require.Equal(t, failed, got.FailedEvents)
			require.Equal(t, actions, got.ActionsBreakdown)
			where := tc.where
			require.Equal(t, topSQL("actor_id", "actor_id", where, tc.args...), got.TopActors)
			require.Equal(t, topSQL("target_id", "target_id", where, tc.args...), got.TopTargets)
			require.Equal(t, topSQL("resource", "resource", where, tc.args...), got.TopResources)
			require.Equal(t, topSQL("source_ip", "host(source_ip)", where, tc.args...), got.TopSourceIPs)
			days := daysSQL(where, tc.args...)
			require.Equal(t, days, got.EventsPerDay)
		})
	}

	t.Run("BadWindowAndPagingParametersAre400", func(t *testing.T) {
		for query, field := range map[string]string{
			"limit=5":                           "limit",
			"cursor=x":                          "cursor",
			"order=asc":                         "order",
			"since=2026-01-02&until=2026-01-01": "until",
			"since=2999-01-01":                  "since",
		} {
			res := b.do(t, "GET", "/v1/audit/summary?"+query, b.key, nil)
			require.Equal(t, http.StatusBadRequest, res.status, query)
			require.Equal(t, field, res.errorBody(t).Field, query)
		}
	})
}

func TestDeleteEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e := event("secret.leaked", "alice")
	e["target"] = map[string]any{"id": "doc-1", "type": "secretdoc"}
	id := b.ingest(t, e).IDs[0]
	keep := b.ingest(t, event("doc.read", "alice")).IDs[0]

	var filters struct {
		Values map[string][]string `json:"values"`
	}
	b.do(t, "GET", "/v1/audit/filters", b.key, nil).decode(t, &filters)
	require.Contains(t, filters.Values["action"], "secret.leaked")
	require.Contains(t, filters.Values["target_type"], "secretdoc")

	res := b.do(t, "DELETE", "/v1/audit/events/"+id, b.key, nil)
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)
	require.Empty(t, res.body)

	require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil).status)
	require.Equal(t, http.StatusNotFound, b.do(t, "DELETE", "/v1/audit/events/"+id, b.key, nil).status)
	require.Equal(t, []string{keep}, ids(b.listAll(t, "limit=100")))

	var sum struct {
		ActionsBreakdown map[string]int64 `json:"actions_breakdown"`
	}
	b.do(t, "GET", "/v1/audit/summary", b.key, nil).decode(t, &sum)
	require.NotContains(t, sum.ActionsBreakdown, "secret.leaked")
	_, body := b.download(t, map[string]any{"format": "json", "since": "2020-01-01", "until": "2100-01-01"}, false)
	var downloaded []audex.Event
	require.NoError(t, json.Unmarshal(body, &downloaded))
	require.NotContains(t, ids(downloaded), id)
	require.Contains(t, ids(downloaded), keep)

	b.do(t, "GET", "/v1/audit/filters", b.key, nil).decode(t, &filters)
	require.NotContains(t, filters.Values["action"], "secret.leaked")
	require.NotContains(t, filters.Values["target_type"], "secretdoc")

	var deletions listAnswer
	b.do(t, "GET", "/v1/audit/events?action=audit.event_deleted", b.key, nil).decode(t, &deletions)
	require.Len(t, deletions.Events, 1)
	record := deletions.Events[0]
	require.Equal(t, id, *record.Target.ID)
	require.Equal(t, "event", *record.Target.Type)
	require.Equal(t, "api_key", *record.Actor.Type)
	require.Regexp(t, `^key_`, record.Actor.ID)

	res = b.do(t, "DELETE", "/v1/audit/events/"+record.ID, b.key, nil)
	require.Equal(t, http.StatusConflict, res.status)
	require.Equal(t, "conflict", res.errorBody(t).Code)

	again := event("secret.leaked", "alice")
	again["id"] = "client-id"
	require.Equal(t, 1, b.ingest(t, again).Accepted)
	require.Equal(t, http.StatusNoContent, b.do(t, "DELETE", "/v1/audit/events/client-id", b.key, nil).status)
	require.Equal(t, 1, b.ingest(t, again).Accepted, "a deleted id can be ingested again")
}

func TestFiltersAndTrails(t *testing.T) {
	t.Parallel()
	b, other := setup(t), setup(t)
	e := event("doc.read", "alice")
	e["actor"] = map[string]any{"id": "alice", "type": "user"}
	e["target"] = map[string]any{"id": "doc-1", "type": "doc"}
	b.ingest(t, e, e, event("doc.write", "bob"))
	other.ingest(t, map[string]any{"action": "other.thing", "actor": map[string]any{"id": "alice", "type": "robot"}})

	res := b.do(t, "GET", "/v1/audit/filters", b.key, nil)
	require.Equal(t, http.StatusOK, res.status)
	var filters struct {
		Filters []struct {
			Name    string   `json:"name"`
			Aliases []string `json:"aliases"`
		} `json:"filters"`
		Sort struct {
			DefaultOrder string `json:"default_order"`
		} `json:"sort"`
		Values map[string][]string `json:"values"`
	}
	res.decode(t, &filters)
	require.Len(t, filters.Filters, 12)
	require.Equal(t, "desc", filters.Sort.DefaultOrder)
	require.Equal(t, []string{"audit.key_created", "doc.read", "doc.write"}, filters.Values["action"])
	require.Equal(t, []string{"system", "user"}, filters.Values["actor_type"])
	require.Equal(t, []string{"api_key", "doc"}, filters.Values["target_type"])

	var trail struct {
		ActorID string `json:"actor_id"`
		Summary struct {
			TotalEvents int64 `json:"total_events"`
		} `json:"summary"`
		Events     []audex.Event `json:"events"`
		NextCursor *string       `json:"next_cursor"`
		HasMore    bool          `json:"has_more"`
	}
	res = b.do(t, "GET", "/v1/audit/actors/alice?limit=1", b.key, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	res.decode(t, &trail)
	require.Equal(t, "alice", trail.ActorID)
	require.EqualValues(t, 2, trail.Summary.TotalEvents, "another tenant's alice does not count")
	require.Len(t, trail.Events, 1)
	require.True(t, trail.HasMore)
	aliceCursor := *trail.NextCursor
	res = b.do(t, "GET", "/v1/audit/actors/alice?limit=1&cursor="+aliceCursor, b.key, nil)
	res.decode(t, &trail)
	require.Len(t, trail.Events, 1)
	require.False(t, trail.HasMore)

	res = b.do(t, "GET", "/v1/audit/actors/bob?limit=1&cursor="+aliceCursor, b.key, nil)
	require.Equal(t, http.StatusBadRequest, res.status, "a cursor of alice's trail is not bob's")
	res = b.do(t, "GET", "/v1/audit/actors/alice?actor_id=bob", b.key, nil)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "actor_id", res.errorBody(t).Field)

	res = b.do(t, "GET", "/v1/audit/targets/doc-1?action=doc.read", b.key, nil)
	require.Equal(t, http.StatusOK, res.status)
	var targetTrail struct {
		TargetID string `json:"target_id"`
		Summary  struct {
			TotalEvents      int64            `json:"total_events"`
			ActionsBreakdown map[string]int64 `json:"actions_breakdown"`
		} `json:"summary"`
		Events []audex.Event `json:"events"`
	}
	res.decode(t, &targetTrail)
	require.Equal(t, "doc-1", targetTrail.TargetID)
	require.EqualValues(t, 2, targetTrail.Summary.TotalEvents)
	require.Equal(t, map[string]int64{"doc.read": 2}, targetTrail.Summary.ActionsBreakdown)
	require.Len(t, targetTrail.Events, 2)
}
