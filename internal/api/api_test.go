package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// testBundle is one test's server, tenant and keys.
type testBundle struct {
	url    string
	pool   *pgxpool.Pool
	server *api.Server
	tenant string
	key    string // every audit scope
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupWith(t, api.Config{Pool: storetest.Pool(t)})
}

// setupWith is setup with a server of cfg (its Pool, limits and the rest);
// the logger and cursor secret are filled in. The server's log is shown
// when the test fails (why a download was cut short, say).
func setupWith(t *testing.T, cfg api.Config) *testBundle {
	t.Helper()
	pool := cfg.Pool
	secret, err := store.CursorSecret(t.Context(), pool)
	require.NoError(t, err)
	logger, logs := logtest.NewLogger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the server's last log lines:\n%s", logs.Tail(40))
		}
	})
	cfg.Logger, cfg.CursorSecret = logger, secret
	srv := api.New(cfg)
	ts := serve(t, srv, logger)
	tenant := storetest.NewTenant(t)
	return &testBundle{
		url:    ts.URL,
		pool:   pool,
		server: srv,
		tenant: tenant,
		key:    storetest.NewKey(t, pool, tenant, audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport, audex.ScopeAdmin),
	}
}

// serve starts h, checked against openapi.json, on an http.Server as
// audex deploys it (api.NewHTTPServer), until the test ends.
func serve(t *testing.T, h http.Handler, logger *slog.Logger) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(checkedAgainstSpec(t, h))
	ts.Config = api.NewHTTPServer(ts.Config.Handler, logger)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t *testing.T) api.Error {
	t.Helper()
	var body struct {
		Error api.Error `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &body), "body: %s", r.body)
	return body.Error
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// do sends a request with key (if not empty) and a JSON body (if not nil:
// a string is sent as is, anything else marshalled).
func (b *testBundle) do(t *testing.T, method, path, key string, body any) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, rd)
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: data}
}

type ingestAnswer struct {
	IDs        []string `json:"ids"`
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
}

// ingest posts events and requires a 201.
func (b *testBundle) ingest(t *testing.T, events ...map[string]any) ingestAnswer {
	t.Helper()
	res := b.do(t, "POST", "/v1/audit/events", b.key, map[string]any{"events": events})
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	var answer ingestAnswer
	res.decode(t, &answer)
	return answer
}

type listAnswer struct {
	Events     []audex.Event `json:"events"`
	NextCursor *string       `json:"next_cursor"`
	HasMore    bool          `json:"has_more"`
}

// listAll follows cursors from query to the end and returns every event
// that is not audex's own record of a change (audit.*).
func (b *testBundle) listAll(t *testing.T, query string) []audex.Event {
	t.Helper()
	var own []audex.Event
	for _, e := range b.listAllWithAudit(t, query) {
		if !strings.HasPrefix(e.Action, "audit.") {
			own = append(own, e)
		}
	}
	return own
}

// listAllWithAudit follows cursors from query to the end.
func (b *testBundle) listAllWithAudit(t *testing.T, query string) []audex.Event {
	t.Helper()
	var all []audex.Event
	cursor := ""
	for range 10000 {
		q := query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		res := b.do(t, "GET", "/v1/audit/events?"+q, b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		var page listAnswer
		res.decode(t, &page)
		all = append(all, page.Events...)
		if !page.HasMore {
			require.Nil(t, page.NextCursor)
			return all
		}
		require.NotNil(t, page.NextCursor)
		cursor = *page.NextCursor
	}
	t.Fatal("pagination did not end")
	return nil
}

func event(action, actor string) map[string]any {
	return map[string]any{"action": action, "actor": map[string]any{"id": actor}}
}

func TestIngestAndGet(t *testing.T) {
	t.Parallel()

	t.Run("StoresEveryFieldAndReturnsItAsGiven", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		in := map[string]any{
			"id":          "client-1",
			"occurred_at": "2026-04-23T21:02:11.512345+02:00",
			"action":      "agent.token_issued",
			"actor":       map[string]any{"id": "agent_abc", "type": "agent", "name": "billing-bot"},
			"target":      map[string]any{"id": "tok_123", "type": "token", "name": ""},
			"resource":    "integrations/salesforce/oauth",
			"source_ip":   "10.0.1.50",
			"user_agent":  "scaivault-python/1.0",
			"request_id":  "req_xyz",
			"method":      "POST",
			"path":        "/oauth/token",
			"status_code": 200,
			"success":     true,
			"duration_ms": 12,
			"metadata":    map[string]any{"grant_type": "client_credentials", "n": 1.5},
		}
		answer := b.ingest(t, in)
		require.Equal(t, ingestAnswer{IDs: []string{"client-1"}, Accepted: 1}, answer)

		res := b.do(t, "GET", "/v1/audit/events/client-1", b.key, nil)
		require.Equal(t, http.StatusOK, res.status)
		var got map[string]any
		res.decode(t, &got)
		require.Equal(t, "2026-04-23T19:02:11.512345Z", got["occurred_at"])
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`, got["received_at"])
		for _, field := range []string{"id", "action", "actor", "target", "resource", "source_ip", "user_agent", "request_id", "method", "path", "success", "metadata"} {
			require.Equal(t, in[field], got[field], field)
		}
		require.EqualValues(t, 200, got["status_code"])
		require.EqualValues(t, 12, got["duration_ms"])
	})

	t.Run("AbsentFieldsComeBackAsNull", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		answer := b.ingest(t, event("user.login", "alice"))
		require.Regexp(t, `^evt_[0-9A-Z]{26}$`, answer.IDs[0])
		res := b.do(t, "GET", "/v1/audit/events/"+answer.IDs[0], b.key, nil)
		var got map[string]any
		res.decode(t, &got)
		for _, field := range []string{"target", "resource", "source_ip", "user_agent", "request_id", "method", "path", "status_code", "success", "duration_ms"} {
			require.Contains(t, got, field)
			require.Nil(t, got[field], field)
		}
		require.Equal(t, map[string]any{"id": "alice", "type": nil, "name": nil}, got["actor"])
		require.Equal(t, map[string]any{}, got["metadata"])
	})

	t.Run("SameClientIDIsStoredOnceAndReportedAsDuplicate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		first := event("doc.read", "alice")
		first["id"] = "dup-1"
		require.Equal(t, 1, b.ingest(t, first).Accepted)

		changed := event("doc.write", "mallory")
		changed["id"] = "dup-1"
		again := b.ingest(t, changed, changed, event("doc.read", "bob"))
		require.Equal(t, 1, again.Accepted)
		require.Equal(t, 2, again.Duplicates)
		require.Equal(t, []string{"dup-1", "dup-1"}, again.IDs[:2])

		all := b.listAll(t, "limit=1000")
		require.Len(t, all, 2)
		var stored audex.Event
		b.do(t, "GET", "/v1/audit/events/dup-1", b.key, nil).decode(t, &stored)
		require.Equal(t, "doc.read", stored.Action, "the first stored copy wins")
	})

	t.Run("DuplicateWithinOneBatchKeepsTheFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a, c := event("first", "alice"), event("second", "alice")
		a["id"], c["id"] = "same", "same"
		answer := b.ingest(t, a, c)
		require.Equal(t, 1, answer.Accepted)
		require.Equal(t, 1, answer.Duplicates)
		var stored audex.Event
		b.do(t, "GET", "/v1/audit/events/same", b.key, nil).decode(t, &stored)
		require.Equal(t, "first", stored.Action)
	})

	t.Run("OneBadEventRejectsTheWholeBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		events := []map[string]any{event("ok.one", "a"), event("ok.two", "b"), event("ok.three", "c"), {"action": "Bad Action", "actor": map[string]any{"id": "d"}}}
		res := b.do(t, "POST", "/v1/audit/events", b.key, map[string]any{"events": events})
		require.Equal(t, http.StatusBadRequest, res.status)
		require.Equal(t, "events[3].action", res.errorBody(t).Field)
		require.Empty(t, b.listAll(t, "limit=10"))
	})

	t.Run("SameIDInAnotherTenantIsAnotherEvent", func(t *testing.T) {
		t.Parallel()
		b, other := setup(t), setup(t)
		e := event("doc.read", "alice")
		e["id"] = "shared-id"
		require.Equal(t, 1, b.ingest(t, e).Accepted)
		require.Equal(t, 1, other.ingest(t, e).Accepted)
	})

	t.Run("EventOfAnotherTenantIsNotFound", func(t *testing.T) {
		t.Parallel()
		b, other := setup(t), setup(t)
		id := other.ingest(t, event("doc.read", "alice")).IDs[0]
		res := b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil)
		require.Equal(t, http.StatusNotFound, res.status)
		require.Equal(t, api.CodeNotFound, res.errorBody(t).Code)
		require.Empty(t, b.listAll(t, "limit=10"))
	})

	t.Run("OldAndFutureEventsAreStoredAndFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i, at := range []string{"1999-12-31T23:59:59Z", "2099-01-01", "0001-01-01T00:00:00Z"} {
			e := event("time.travel", "alice")
			e["id"], e["occurred_at"] = fmt.Sprintf("tt-%d", i), at
			b.ingest(t, e)
			require.Equal(t, http.StatusOK, b.do(t, "GET", fmt.Sprintf("/v1/audit/events/tt-%d", i), b.key, nil).status)
		}
		require.Len(t, b.listAll(t, "limit=2"), 3)
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
