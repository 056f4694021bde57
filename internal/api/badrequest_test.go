package api_test

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// ingestBody returns an ingest body of one event with fields changed:
// a nil value removes the field.
func ingestBody(changes map[string]any) string {
	e := map[string]any{"action": "user.login", "actor": map[string]any{"id": "alice"}}
	for k, v := range changes {
		if v == nil {
			delete(e, k)
		} else {
			e[k] = v
		}
	}
	data, _ := json.Marshal(map[string]any{"events": []any{e}})
	return string(data)
}

func manyEvents(n int) string {
	events := make([]string, n)
	for i := range events {
		events[i] = `{"action":"a","actor":{"id":"x"}}`
	}
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for range 3 {
		b.ingest(t, event("a", "x"))
	}
	var page listAnswer
	b.do(t, "GET", "/v1/audit/events?limit=1&actor_id=x", b.key, nil).decode(t, &page)
	cursor := *page.NextCursor
	payload, sig, _ := strings.Cut(cursor, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	require.NoError(t, err)
	forged := base64.RawURLEncoding.EncodeToString(bytes.Replace(raw, []byte(`"t":`), []byte(`"t":1`), 1)) + "." + sig

	other := setup(t)
	other.ingest(t, event("a", "x"), event("a", "x"))
	var otherPage listAnswer
	other.do(t, "GET", "/v1/audit/events?limit=1&actor_id=x", other.key, nil).decode(t, &otherPage)

	list := "/v1/audit/events?"
	cases := []struct {
		name        string
		method      string
		path        string
		contentType string // "-" sends none
		body        string
		status      int
		code        string
		field       string
	}{
		{"SinceNotATime", "GET", list + "since=yesterday", "", "", 400, "invalid_argument", "since"},
		{"SinceWithoutZone", "GET", list + "since=2026-04-20T00:00:00", "", "", 400, "invalid_argument", "since"},
		{"UntilBadMonth", "GET", list + "until=2026-13-01", "", "", 400, "invalid_argument", "until"},
		{"SinceAfterUntil", "GET", list + "since=2026-04-21&until=2026-04-20", "", "", 400, "invalid_argument", "until"},
		{"SinceEqualsUntil", "GET", list + "since=2026-04-20&until=2026-04-20T00:00:00Z", "", "", 400, "invalid_argument", "until"},
		{"FromEqualsTo", "GET", list + "from=2026-04-20&to=2026-04-20", "", "", 400, "invalid_argument", "to"},
		{"SinceInYearZero", "GET", list + "since=0000-06-01", "", "", 400, "invalid_argument", "since"},
		{"SinceAnOffsetPushesIntoYearZero", "GET", list + "since=0001-01-01T00:30:00%2B01:00", "", "", 400, "invalid_argument", "since"},
		{"UntilAnOffsetPushesIntoYear10000", "GET", list + "until=9999-12-31T23:00:00-05:00", "", "", 400, "invalid_argument", "until"},
		{"ToRoundsUpIntoYear10000", "GET", list + "to=9999-12-31T23:59:59.9999999Z", "", "", 400, "invalid_argument", "to"},
		{"SummaryUntilInYear10000", "GET", "/v1/audit/summary?until=9999-12-31T23:00:00-05:00", "", "", 400, "invalid_argument", "until"},
		{"SummaryDefaultSinceBeforeYear1", "GET", "/v1/audit/summary?until=0001-01-02", "", "", 400, "invalid_argument", "since"},
		{"TrailDefaultSinceBeforeYear1", "GET", "/v1/audit/targets/x?until=0001-01-30T23:59:59Z", "", "", 400, "invalid_argument", "since"},
		{"TrailUntilInYear10000", "GET", "/v1/audit/actors/x?until=9999-12-31T23:00:00-05:00", "", "", 400, "invalid_argument", "until"},
		{"DownloadUntilInYear10000", "POST", "/v1/audit/export", "", `{"since":"2026-01-01","until":"9999-12-31T23:00:00-05:00"}`, 400, "invalid_argument", "until"},
		{"PurgeBeforeInYear10000", "POST", "/v1/audit/purge", "", `{"before":"9999-12-31T23:00:00-05:00","dry_run":true}`, 400, "invalid_argument", "before"},
		{"LimitZero", "GET", list + "limit=0", "", "", 400, "invalid_argument", "limit"},
		{"Limit1001", "GET", list + "limit=1001", "", "", 400, "invalid_argument", "limit"},
		{"LimitNotANumber", "GET", list + "limit=ten", "", "", 400, "invalid_argument", "limit"},
		{"LimitNegative", "GET", list + "limit=-5", "", "", 400, "invalid_argument", "limit"},
		{"LimitTwice", "GET", list + "limit=1&limit=2", "", "", 400, "invalid_argument", "limit"},
		{"UnknownParameter", "GET", list + "colour=red", "", "", 400, "invalid_argument", "colour"},
		{"ParameterAndItsAlias", "GET", list + "since=2026-01-01&from=2026-01-01", "", "", 400, "invalid_argument", "since"},
		{"BadOrder", "GET", list + "order=sideways", "", "", 400, "invalid_argument", "order"},
		{"BadSortBy", "GET", list + "sort_by=action", "", "", 400, "invalid_argument", "sort_by"},
		{"BadSuccess", "GET", list + "success=yes", "", "", 400, "invalid_argument", "success"},
		{"BadSourceIP", "GET", list + "source_ip=10.0.0.300", "", "", 400, "invalid_argument", "source_ip"},
		{"SourceIPWithZone", "GET", list + "source_ip=fe80::1%25eth0", "", "", 400, "invalid_argument", "source_ip"},
		{"EmptyActionInList", "GET", list + "action=a,,b", "", "", 400, "invalid_argument", "action"},
		{"NULInFilter", "GET", list + "request_id=a%00b", "", "", 400, "invalid_argument", "request_id"},
		{"InvalidUTF8InFilter", "GET", list + "actor_id=%FF%FE", "", "", 400, "invalid_argument", "actor_id"},
		{"OverlongFilter", "GET", list + "actor_id=" + strings.Repeat("a", 1025), "", "", 400, "invalid_argument", "actor_id"},
		{"MalformedQueryString", "GET", list + "since=%zz", "", "", 400, "invalid_argument", ""},
		{"GarbageCursor", "GET", list + "cursor=garbage", "", "", 400, "invalid_argument", "cursor"},
		{"EmptyCursor", "GET", list + "cursor=", "", "", 400, "invalid_argument", "cursor"},
		{"ForgedCursor", "GET", list + "actor_id=x&cursor=" + forged, "", "", 400, "invalid_argument", "cursor"},
		{"CursorWithOtherFilters", "GET", list + "actor_id=y&cursor=" + cursor, "", "", 400, "invalid_argument", "cursor"},
		{"CursorWithOtherOrder", "GET", list + "actor_id=x&order=asc&cursor=" + cursor, "", "", 400, "invalid_argument", "cursor"},
		{"CursorOfAnotherTenant", "GET", list + "actor_id=x&cursor=" + *otherPage.NextCursor, "", "", 400, "invalid_argument", "cursor"},
		{"QueryOnGetEvent", "GET", "/v1/audit/events/x?pretty=1", "", "", 400, "invalid_argument", ""},

		{"MalformedJSON", "POST", "/v1/audit/events", "", `{"events": [`, 400, "invalid_argument", ""},
		{"NotJSONAtAll", "POST", "/v1/audit/events", "", `hello`, 400, "invalid_argument", ""},
		{"WrongContentType", "POST", "/v1/audit/events", "text/plain", ingestBody(nil), 400, "invalid_argument", "Content-Type"},
		{"NoContentType", "POST", "/v1/audit/events", "-", ingestBody(nil), 400, "invalid_argument", "Content-Type"},
		{"OversizedBody", "POST", "/v1/audit/events", "", `{"events":[{"action":"a","actor":{"id":"x"},"metadata":{"pad":"` + strings.Repeat("x", 6<<20) + `"}}]}`, 413, "payload_too_large", ""},
		{"TooManyEvents", "POST", "/v1/audit/events", "", manyEvents(1001), 400, "invalid_argument", "events"},
		{"NoEvents", "POST", "/v1/audit/events", "", `{"events":[]}`, 400, "invalid_argument", "events"},
		{"EventsMissing", "POST", "/v1/audit/events", "", `{}`, 400, "invalid_argument", "events"},
		{"EventsNotAnArray", "POST", "/v1/audit/events", "", `{"events":{}}`, 400, "invalid_argument", "events"},
		{"UnknownTopLevelField", "POST", "/v1/audit/events", "", `{"events":[{"action":"a","actor":{"id":"x"}}],"extra":1}`, 400, "invalid_argument", "extra"},
		{"TrailingData", "POST", "/v1/audit/events", "", ingestBody(nil) + `{}`, 400, "invalid_argument", ""},
		{"QueryOnIngest", "POST", "/v1/audit/events?async=1", "", ingestBody(nil), 400, "invalid_argument", ""},
		{"EventNotAnObject", "POST", "/v1/audit/events", "", `{"events":[1]}`, 400, "invalid_argument", "events[0]"},
		{"UnknownEventField", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"colour": "red"}), 400, "invalid_argument", "events[0].colour"},
		{"UnknownActorField", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "a", "email": "x"}}), 400, "invalid_argument", "events[0].actor.email"},
		{"MissingAction", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"action": nil}), 400, "invalid_argument", "events[0].action"},
		{"ActionWithCapitals", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"action": "User.Login"}), 400, "invalid_argument", "events[0].action"},
		{"ActionTooLong", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"action": strings.Repeat("a", 129)}), 400, "invalid_argument", "events[0].action"},
		{"ReservedAction", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"action": "audit.key_created"}), 400, "invalid_argument", "events[0].action"},
		{"MissingActor", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": nil}), 400, "invalid_argument", "events[0].actor.id"},
		{"EmptyActorID", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": ""}}), 400, "invalid_argument", "events[0].actor.id"},
		{"ActorNotAnObject", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": "alice"}), 400, "invalid_argument", "events[0].actor"},
		{"ActorIDNotAString", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": 7}}), 400, "invalid_argument", "events[0].actor.id"},
		{"NULInActorName", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "a", "name": "a\x00b"}}), 400, "invalid_argument", "events[0].actor.name"},
		{"SystemActor", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "audex", "type": "system", "name": "audex"}}), 400, "invalid_argument", "events[0].actor"},
		{"SystemActorWithoutName", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "audex", "type": "system"}}), 400, "invalid_argument", "events[0].actor"},
		{"SystemActorInOtherCase", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "AUDEX", "type": "System", "name": "someone"}}), 400, "invalid_argument", "events[0].actor"},
		{"SystemActorWithLongS", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "Audex", "type": "\u017fystem"}}), 400, "invalid_argument", "events[0].actor"},
		{"BadSourceIPOnIngest", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"source_ip": "999.1.1.1"}), 400, "invalid_argument", "events[0].source_ip"},
		{"MetadataOver16KiB", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"metadata": map[string]any{"pad": strings.Repeat("x", 16<<10)}}), 400, "invalid_argument", "events[0].metadata"},
		{"MetadataNotAnObject", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"metadata": []int{1}}), 400, "invalid_argument", "events[0].metadata"},
		{"MetadataWithNUL", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"metadata": map[string]any{"k": "a\x00"}}), 400, "invalid_argument", "events[0].metadata"},
		{"MetadataHugeNumber", "POST", "/v1/audit/events", "", `{"events":[{"action":"a","actor":{"id":"x"},"metadata":{"n":1e99999}}]}`, 400, "invalid_argument", "events[0].metadata"},
		{"MetadataTooDeep", "POST", "/v1/audit/events", "", `{"events":[{"action":"a","actor":{"id":"x"},"metadata":{"n":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}]}`, 400, "invalid_argument", "events[0].metadata"},
		{"OccurredAtNotATime", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"occurred_at": "last tuesday"}), 400, "invalid_argument", "events[0].occurred_at"},
		{"OccurredAtInYear10000ByOffset", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"occurred_at": "9999-12-31T23:00:00-05:00"}), 400, "invalid_argument", "events[0].occurred_at"},
		{"OccurredAtRoundsUpIntoYear10000", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"occurred_at": "9999-12-31T23:59:59.9999999Z"}), 400, "invalid_argument", "events[0].occurred_at"},
		{"OccurredAtInYearZero", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"occurred_at": "0000-12-31T00:00:00Z"}), 400, "invalid_argument", "events[0].occurred_at"},
		{"OccurredAtANumber", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"occurred_at": 1700000000}), 400, "invalid_argument", "events[0].occurred_at"},
		{"IDWithSpace", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"id": "a b"}), 400, "invalid_argument", "events[0].id"},
		{"IDTooLong", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"id": strings.Repeat("a", 129)}), 400, "invalid_argument", "events[0].id"},
		{"EmptyID", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"id": ""}), 400, "invalid_argument", "events[0].id"},
		{"IDLikeAFormula", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"id": "-1"}), 400, "invalid_argument", "events[0].id"},
		{"ActionLikeAFormula", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"action": "-user.login"}), 400, "invalid_argument", "events[0].action"},
		{"ActorIDLikeAFormula", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "=cmd|' /C calc'!A0"}}), 400, "invalid_argument", "events[0].actor.id"},
		{"ActorIDStartingWithAt", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "@SUM(1)"}}), 400, "invalid_argument", "events[0].actor.id"},
		{"ActorIDStartingWithTab", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"actor": map[string]any{"id": "\tx"}}), 400, "invalid_argument", "events[0].actor.id"},
		{"TargetIDLikeAFormula", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"target": map[string]any{"id": "+1"}}), 400, "invalid_argument", "events[0].target.id"},
		{"TargetIDStartingWithCR", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"target": map[string]any{"id": "\rx"}}), 400, "invalid_argument", "events[0].target.id"},
		{"StatusCodeFraction", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"status_code": 200.5}), 400, "invalid_argument", "events[0].status_code"},
		{"StatusCodeOutOfRange", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"status_code": 99}), 400, "invalid_argument", "events[0].status_code"},
		{"StatusCodeHuge", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"status_code": 1e30}), 400, "invalid_argument", "events[0].status_code"},
		{"NegativeDuration", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"duration_ms": -1}), 400, "invalid_argument", "events[0].duration_ms"},
		{"ReceivedAtGiven", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"received_at": "2026-01-01T00:00:00Z"}), 400, "invalid_argument", "events[0].received_at"},
		{"SuccessAsString", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"success": "yes"}), 400, "invalid_argument", "events[0].success"},
		{"ResourceTooLong", "POST", "/v1/audit/events", "", ingestBody(map[string]any{"resource": strings.Repeat("r", 2049)}), 400, "invalid_argument", "events[0].resource"},
		{"SecondEventBad", "POST", "/v1/audit/events", "", `{"events":[{"action":"a","actor":{"id":"x"}},{"action":"","actor":{"id":"x"}}]}`, 400, "invalid_argument", "events[1].action"},

		{"UnknownRoute", "GET", "/v1/audit/nothing", "", "", 404, "not_found", ""},
		{"WrongMethod", "DELETE", "/v1/audit/events", "", "", 405, "method_not_allowed", ""},
		{"EventIDWithBadCharacters", "GET", "/v1/audit/events/" + strings.Repeat("%C3%A9", 3), "", "", 404, "not_found", ""},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, b.url+tc.path, body)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+b.key)
			switch tc.contentType {
			case "":
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/json; charset=utf-8")
				}
			case "-":
			default:
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			data, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Equal(t, tc.status, res.StatusCode, "body: %s", data)
			require.Equal(t, "application/json", res.Header.Get("Content-Type"))
			var got struct {
				Error api.Error `json:"error"`
			}
			require.NoError(t, json.Unmarshal(data, &got), "body: %s", data)
			require.Equal(t, tc.code, got.Error.Code)
			require.Equal(t, tc.field, got.Error.Field, "message: %s", got.Error.Message)
			require.NotEmpty(t, got.Error.Message)
		})
	}
	t.Run("NothingWasStored", func(t *testing.T) {
		require.Len(t, b.listAll(t, "limit=1000"), 3)
	})
}

func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	eb, otherEB := setupExports(t, false), setupExports(t, false)
	b, other := eb.testBundle, otherEB.testBundle
	exportBody := map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl", "destination": map[string]any{"name": "local"}}
	ownEvent := b.ingest(t, event("doc.read", "alice")).IDs[0]
	otherEvent := other.ingest(t, event("doc.read", "mallory")).IDs[0]
	ownExport := eb.createExport(t, exportBody)
	otherExport := otherEB.createExport(t, exportBody)
	streamBody := map[string]any{"format": "jsonl", "destination": map[string]any{"name": "local"}}
	ownStream := eb.createStream(t, streamBody).ID
	otherStream := otherEB.createStream(t, streamBody).ID
	ownPurge := eb.purge(t, "2000-01-01")
	otherPurge := otherEB.purge(t, "2000-01-01")

	// Both tenants' logs sealed, so that the log's routes have checkpoints.
	logKeys, err := integrity.ParseKeys(storetest.LogKey(t))
	require.NoError(t, err)
	for _, tenant := range []string{b.tenant, other.tenant} {
		_, _, err := store.SealLog(t.Context(), b.pool, tenant, "audex", 1000, logKeys.Sign)
		require.NoError(t, err)
	}
	size, _, err := store.LatestLogCheckpoint(t.Context(), b.pool, b.tenant)
	require.NoError(t, err)
	queries := map[string]string{"GET /v1/audit/log/consistency": fmt.Sprintf("?from=%d&to=%d", size, size)}

	revoked := storetest.NewKey(t, b.pool, b.tenant, "audit:read", "audit:write", "audit:export", "audit:admin")
	_, err = store.RevokeAPIKey(t.Context(), b.pool, "", audex.HashKey(revoked))
	require.NoError(t, err)

	pathOf := func(pattern, id string) string {
		return strings.NewReplacer("{id}", id, "{actor_id}", "alice", "{target_id}", "doc-1").Replace(pattern)
	}
	bodies := map[string]any{
		"POST /v1/audit/events":        map[string]any{"events": []any{event("doc.read", "alice")}},
		"POST /v1/audit/export":        map[string]any{"since": "2020-01-01", "until": "2100-01-01"},
		"POST /v1/audit/exports":       exportBody,
		"POST /v1/audit/purge":         map[string]any{"before": "2000-01-01"},
		"POST /v1/audit/streams":       streamBody,
		"PATCH /v1/audit/streams/{id}": map[string]any{"status": "paused"},
		"PUT /v1/audit/retention":      map[string]any{"retain_days": 36500},
	}
	checked := checkedAgainstSpec(t, b.server)
	for i, rt := range b.server.Routes() {
		if rt.Scope == "" {
			continue
		}
		method := cmp.Or(rt.Method, "GET") // a route of every method is tried with GET
		name := method + " " + rt.Pattern
		t.Run(name, func(t *testing.T) {
			ownID, otherID := ownEvent, otherEvent
			switch {
			case strings.HasPrefix(rt.Pattern, "/v1/audit/exports/"):
				ownID, otherID = ownExport, otherExport
			case strings.HasPrefix(rt.Pattern, "/v1/audit/purges/"):
				ownID, otherID = ownPurge, otherPurge
			case strings.HasPrefix(rt.Pattern, "/v1/audit/streams/"):
				ownID, otherID = ownStream, otherStream
			}
			switch name {
			case "DELETE /v1/audit/events/{id}":
				ownID = b.ingest(t, event("doc.read", "alice")).IDs[0] // one to delete
			case "POST /v1/audit/exports/{id}/cancel":
				ownID = eb.createExport(t, exportBody) // one to cancel
			case "DELETE /v1/audit/streams/{id}":
				ownID = eb.createStream(t, streamBody).ID // one to delete
			}
			path := pathOf(rt.Pattern, ownID) + queries[name]
			body := bodies[name]
			for _, auth := range []struct {
				name, header, value string
			}{
				{"NoKey", "", ""},
				{"MalformedAuthorization", "Authorization", "Basic dXNlcjpwYXNz"},
				{"UnknownKey", "Authorization", "Bearer adx_unknown"},
				{"RevokedKey", "Authorization", "Bearer " + revoked},
				{"RevokedKeyAsXAPIKey", "X-API-Key", revoked},
			} {
				// Each route's failures come from an address of its own:
				// one address gets only authFailureBurst of them.
				req := httptest.NewRequestWithContext(t.Context(), method, path, nil)
				req.RemoteAddr = fmt.Sprintf("192.0.2.%d:40000", i)
				if auth.header != "" {
					req.Header.Set(auth.header, auth.value)
				}
				rec := httptest.NewRecorder()
				checked.ServeHTTP(rec, req)
				require.Equal(t, http.StatusUnauthorized, rec.Code, auth.name)
			}
			var allButScope []string
			for _, s := range []string{"audit:read", "audit:write", "audit:export", "audit:admin", "operator"} {
				if s != rt.Scope {
					allButScope = append(allButScope, s)
				}
			}
			lacking := storetest.NewKey(t, b.pool, b.tenant, allButScope...)
			res := b.do(t, method, path, lacking, body)
			require.Equal(t, http.StatusForbidden, res.status, "body: %s", res.body)
			require.Equal(t, "permission_denied", res.errorBody(t).Code)

			own := b.key
			if rt.Scope == audex.ScopeOperator {
				own = storetest.NewKey(t, b.pool, b.tenant, audex.ScopeOperator)
			}
			res = b.do(t, method, path, own, body)
			require.Less(t, res.status, 300, "the tenant's own key works: %s", res.body)

			// Another tenant's id looks exactly like an id that does not exist.
			if strings.Contains(rt.Pattern, "{id}") {
				res := b.do(t, method, pathOf(rt.Pattern, otherID), b.key, body)
				missing := b.do(t, method, pathOf(rt.Pattern, "no-such-id"), b.key, body)
				require.Equal(t, http.StatusNotFound, res.status)
				require.Equal(t, missing.body, res.body)
			}
		})
	}
	t.Run("ListsShowOnlyTheTenantsOwn", func(t *testing.T) {
		var exports struct {
			Exports []audex.Export `json:"exports"`
		}
		b.do(t, "GET", "/v1/audit/exports?limit=1000", b.key, nil).decode(t, &exports)
		for _, e := range exports.Exports {
			require.NotEqual(t, otherExport, e.ID)
		}
		var streams struct {
			Streams []audex.Stream `json:"streams"`
		}
		b.do(t, "GET", "/v1/audit/streams?limit=1000", b.key, nil).decode(t, &streams)
		require.NotEmpty(t, streams.Streams)
		for _, st := range streams.Streams {
			require.NotEqual(t, otherStream, st.ID)
		}
		for _, e := range b.listAllWithAudit(t, "limit=1000") {
			require.NotEqual(t, otherEvent, e.ID)
			require.NotEqual(t, "mallory", e.Actor.ID)
		}
	})
}

// TestRoutesWithoutParametersRefuseAQueryString tries every route of the
// table that takes no query parameters with one.
func TestRoutesWithoutParametersRefuseAQueryString(t *testing.T) {
	t.Parallel()
	b := setup(t)
	key := storetest.NewKey(t, b.pool, b.tenant, audex.AllScopes...)
	path := strings.NewReplacer("{id}", "some-id", "{actor_id}", "alice", "{target_id}", "doc-1")
	tried := 0
	for _, rt := range b.server.Routes() {
		if rt.Query {
			continue
		}
		res := b.do(t, cmp.Or(rt.Method, "GET"), path.Replace(rt.Pattern)+"?verbose=1", key, nil)
		require.Equal(t, http.StatusBadRequest, res.status, "%s %s: %s", rt.Method, rt.Pattern, res.body)
		require.Equal(t, api.CodeInvalidArgument, res.errorBody(t).Code)
		tried++
	}
	require.Greater(t, tried, 10)
}

// TestTheEdgesAreAccepted tries what lies just inside the refusals of
// TestBadRequests: the first and the last time of the API's range, in UTC
// and with offsets, and actors that only look like audex's system actor.
func TestTheEdgesAreAccepted(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("FirstAndLastTimesAreStoredAndFound", func(t *testing.T) {
		t.Parallel()
		for id, at := range map[string]string{
			"first":       "0001-01-01T00:00:00Z",
			"first-date":  "0001-01-01",
			"first-east":  "0001-01-01T01:00:00+01:00",
			"last":        "9999-12-31T23:59:59.999999Z",
			"last-west":   "9999-12-31T18:59:59.999999-05:00",
			"last-nanos":  "9999-12-31T23:59:59.999998001Z", // rounds up to the last microsecond
			"last-second": "9999-12-31T23:59:59Z",
		} {
			e := event("time.edge", "edge-"+id)
			e["id"], e["occurred_at"] = id, at
			b.ingest(t, e)
		}
		for id, want := range map[string]string{
			"first": "0001-01-01T00:00:00Z", "first-date": "0001-01-01T00:00:00Z", "first-east": "0001-01-01T00:00:00Z",
			"last": "9999-12-31T23:59:59.999999Z", "last-west": "9999-12-31T23:59:59.999999Z", "last-nanos": "9999-12-31T23:59:59.999999Z",
			"last-second": "9999-12-31T23:59:59Z",
		} {
			res := b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil)
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			var got map[string]any
			res.decode(t, &got)
			require.Equal(t, want, got["occurred_at"], id)
		}
		require.Len(t, b.listAll(t, "action=time.edge&since=0001-01-01T00:00:00Z&limit=1000"), 7)
		require.Len(t, b.listAll(t, "action=time.edge&until=9999-12-31T23:59:59.999999Z&limit=1000"), 4, "until is exclusive")
		res := b.do(t, "GET", "/v1/audit/summary?action=time.edge&since=9999-12-01&until=9999-12-31T23:59:59.999999Z", b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		var sum struct {
			Since, Until string
			Total        int `json:"total_events"`
		}
		res.decode(t, &sum)
		require.Equal(t, "9999-12-31T23:59:59.999999Z", sum.Until)
		require.Equal(t, 1, sum.Total, "only last-second is before until")
		res = b.do(t, "POST", "/v1/audit/purge", b.key, map[string]any{"before": "9999-12-31T23:59:59.999999Z", "dry_run": true})
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	})

	t.Run("ActorsThatOnlyLookLikeTheSystemActorAreStored", func(t *testing.T) {
		t.Parallel()
		var events []map[string]any
		for _, actor := range []map[string]any{
			{"id": "audex"},
			{"id": "audex", "type": "user"},
			{"id": "audex-bot", "type": "system"},
			{"id": "system", "type": "audex"},
			{"id": "audex ", "type": "system"}, // ids are exact: this is another id
		} {
			events = append(events, map[string]any{"action": "actor.lookalike", "actor": actor})
		}
		require.Equal(t, len(events), b.ingest(t, events...).Accepted)
	})
}
