package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/storetest"
)

// createStream posts a stream and returns its status.
func (b *exportBundle) createStream(t *testing.T, body map[string]any) audex.Stream {
	t.Helper()
	res := b.do(t, "POST", "/v1/audit/streams", b.key, body)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	var st audex.Stream
	res.decode(t, &st)
	require.Equal(t, "/v1/audit/streams/"+st.ID, res.header.Get("Location"))
	return st
}

// getStream reads a stream's status.
func (b *exportBundle) getStream(t *testing.T, id string) audex.Stream {
	t.Helper()
	res := b.do(t, "GET", "/v1/audit/streams/"+id, b.key, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	var st audex.Stream
	res.decode(t, &st)
	return st
}

// withoutLag is st without its lag, which grows with every read.
func withoutLag(st audex.Stream) audex.Stream {
	st.LagSeconds = 0
	return st
}

// batches reads every delivered batch of a stream, following cursors.
func (b *exportBundle) batches(t *testing.T, id string) []audex.StreamBatch {
	t.Helper()
	var all []audex.StreamBatch
	path := "/v1/audit/streams/" + id + "/batches?limit=2"
	for {
		var page struct {
			Batches    []audex.StreamBatch `json:"batches"`
			NextCursor *string             `json:"next_cursor"`
			HasMore    bool                `json:"has_more"`
		}
		res := b.do(t, "GET", path, b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		res.decode(t, &page)
		all = append(all, page.Batches...)
		if !page.HasMore {
			return all
		}
		path = "/v1/audit/streams/" + id + "/batches?limit=2&cursor=" + *page.NextCursor
	}
}

// streamedIDs reads the stream's batches back from the "local"
// destination, checking the chain (each manifest's bytes hash to its
// recorded sha256 and the next one names it) and every part's size and
// sha256, and returns the delivered event ids in order.
func (b *exportBundle) streamedIDs(t *testing.T, id string) []string {
	t.Helper()
	return b.streamedIDsFrom(t, id, "local")
}

// streamedIDsFrom is streamedIDs from the destination named.
func (b *exportBundle) streamedIDsFrom(t *testing.T, id, destination string) []string {
	t.Helper()
	ids, _ := sinktest.ReadStreamChain(t, b.sinks[destination], b.batches(t, id))
	return ids
}

func TestStreams(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetListPauseRetimeAndDeleteAreAudited", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		st := b.createStream(t, map[string]any{"destination": map[string]any{"name": "local", "prefix": "siem"},
			"format": "ndjson", "compression": "gzip", "filters": map[string]any{"action": "doc.read"}})
		require.Equal(t, audex.StreamActive, st.Status)
		require.Equal(t, "jsonl", st.Format)
		require.Equal(t, 300, st.IntervalSeconds, "the default interval")
		require.Equal(t, "exports/siem", st.Destination.Prefix)
		require.Equal(t, st.Start, st.Watermark, "from now on")
		require.JSONEq(t, `{"action":["doc.read"]}`, string(st.Filters))
		require.Equal(t, withoutLag(st), withoutLag(b.getStream(t, st.ID)))

		res := b.do(t, "PATCH", "/v1/audit/streams/"+st.ID, b.key, map[string]any{"status": "paused", "interval_seconds": 120})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var changed audex.Stream
		res.decode(t, &changed)
		require.Equal(t, audex.StreamPaused, changed.Status)
		require.Equal(t, 120, changed.IntervalSeconds)

		var list struct {
			Streams []audex.Stream `json:"streams"`
		}
		b.do(t, "GET", "/v1/audit/streams", b.key, nil).decode(t, &list)
		require.Len(t, list.Streams, 1)
		require.Equal(t, st.ID, list.Streams[0].ID)

		require.Equal(t, http.StatusNoContent, b.do(t, "DELETE", "/v1/audit/streams/"+st.ID, b.key, nil).status)
		require.Equal(t, http.StatusNotFound, b.do(t, "GET", "/v1/audit/streams/"+st.ID, b.key, nil).status)
		require.Equal(t, http.StatusNotFound, b.do(t, "DELETE", "/v1/audit/streams/"+st.ID, b.key, nil).status)
		b.do(t, "GET", "/v1/audit/streams", b.key, nil).decode(t, &list)
		require.Empty(t, list.Streams)

		var actions []string
		for _, e := range b.listAllWithAudit(t, "order=asc&action_prefix=audit.stream_") {
			require.Equal(t, st.ID, *e.Target.ID)
			require.Equal(t, "stream", *e.Target.Type)
			require.Equal(t, "api_key", *e.Actor.Type)
			actions = append(actions, e.Action)
		}
		require.Equal(t, []string{"audit.stream_created", "audit.stream_updated", "audit.stream_deleted"}, actions)
	})

	t.Run("BadRequestsAreRefusedNamingTheField", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		local := map[string]any{"name": "local"}
		for _, tc := range []struct {
			name  string
			body  map[string]any
			field string
		}{
			{"NoFormat", map[string]any{"destination": local}, "format"},
			{"UnknownFormat", map[string]any{"destination": local, "format": "xml"}, "format"},
			{"ParquetGzipped", map[string]any{"destination": local, "format": "parquet", "compression": "gzip"}, "compression"},
			{"NoDestination", map[string]any{"format": "jsonl"}, "destination"},
			{"DestinationOfAnotherTenant", map[string]any{"destination": map[string]any{"name": "private"}, "format": "jsonl"}, "destination"},
			{"IntervalUnderTheMinimum", map[string]any{"destination": local, "format": "jsonl", "interval_seconds": 0}, "interval_seconds"},
			{"IntervalOverADay", map[string]any{"destination": local, "format": "jsonl", "interval_seconds": 86401}, "interval_seconds"},
			{"IntervalWithAFraction", map[string]any{"destination": local, "format": "jsonl", "interval_seconds": 60.5}, "interval_seconds"},
			{"IntervalAsAString", map[string]any{"destination": local, "format": "jsonl", "interval_seconds": "60"}, "interval_seconds"},
			{"StartInTheFuture", map[string]any{"destination": local, "format": "jsonl", "start": time.Now().Add(time.Hour).Format(time.RFC3339)}, "start"},
			{"StartNotATime", map[string]any{"destination": local, "format": "jsonl", "start": "yesterday"}, "start"},
			{"TimeBoundsInFilters", map[string]any{"destination": local, "format": "jsonl", "filters": map[string]any{"since": "2026-01-01"}}, "filters.since"},
			{"UnknownField", map[string]any{"destination": local, "format": "jsonl", "until": "2026-01-01"}, "until"},
			{"CSVToAWebhook", map[string]any{"destination": map[string]any{"name": "hook"}, "format": "csv"}, "format"},
			{"UncompressedToAWebhook", map[string]any{"destination": map[string]any{"name": "hook"}, "format": "jsonl", "compression": "none"}, "compression"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := b.do(t, "POST", "/v1/audit/streams", b.key, tc.body)
				require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
				require.Equal(t, tc.field, res.errorBody(t).Field, "%s", res.body)
			})
		}
		st := b.createStream(t, map[string]any{"destination": local, "format": "csv"})
		for _, tc := range []struct {
			name  string
			body  any
			field string
		}{
			{"Nothing", map[string]any{}, ""},
			{"AStatusThatIsNotAChoice", map[string]any{"status": "failed"}, "status"},
			{"IntervalUnderTheMinimum", map[string]any{"interval_seconds": 0}, "interval_seconds"},
			{"UnknownField", map[string]any{"format": "jsonl"}, "format"},
			{"NotAnObject", "[]", ""},
		} {
			t.Run("Patch"+tc.name, func(t *testing.T) {
				res := b.do(t, "PATCH", "/v1/audit/streams/"+st.ID, b.key, tc.body)
				require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
				require.Equal(t, tc.field, res.errorBody(t).Field, "%s", res.body)
			})
		}
		require.Equal(t, withoutLag(st), withoutLag(b.getStream(t, st.ID)), "nothing changed")

		t.Run("AWebhookTakesGzippedJSONLStreamsAndNoExport", func(t *testing.T) {
			hook := b.createStream(t, map[string]any{"destination": map[string]any{"name": "hook"}, "format": "jsonl"})
			require.Equal(t, "webhook", hook.Destination.Type)
			require.Equal(t, "gzip", hook.Compression)
			res := b.do(t, "POST", "/v1/audit/exports", b.key, map[string]any{"since": "2026-01-01", "until": "2026-02-01",
				"format": "jsonl", "destination": map[string]any{"name": "hook"}})
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			require.Equal(t, "destination", res.errorBody(t).Field)
			require.Contains(t, res.errorBody(t).Message, "streams only")
		})
	})

	t.Run("AWorkerDeliversEveryEventOnceLateOnesIncludedAcrossPauses", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, true)
		b.ingest(t, event("doc.read", "alice"), event("doc.read", "bob"))
		st := b.createStream(t, map[string]any{"destination": map[string]any{"name": "local"}, "format": "jsonl",
			"interval_seconds": 1, "start": time.Now().Add(-time.Hour).Format(time.RFC3339Nano),
			"filters": map[string]any{"action": "doc.read"}})
		waitDelivered := func(n int) []string {
			t.Helper()
			var ids []string
			require.Eventually(t, func() bool {
				ids = b.streamedIDs(t, st.ID)
				return len(ids) >= n
			}, 30*time.Second, 100*time.Millisecond)
			return ids
		}
		ids := waitDelivered(2)

		late := event("doc.read", "carol")
		late["occurred_at"] = time.Now().Add(-10 * 24 * time.Hour).Format(time.RFC3339)
		lateID := b.ingest(t, late).IDs[0]
		ids = waitDelivered(3)
		require.Equal(t, lateID, ids[2], "the late event is in a later batch")

		res := b.do(t, "PATCH", "/v1/audit/streams/"+st.ID, b.key, map[string]any{"status": "paused"})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		time.Sleep(1500 * time.Millisecond) // a batch under way ends
		delivered := len(b.batches(t, st.ID))
		pausedID := b.ingest(t, event("doc.read", "dave")).IDs[0]
		b.ingest(t, event("doc.written", "dave")) // not matching
		time.Sleep(2500 * time.Millisecond)
		require.Len(t, b.batches(t, st.ID), delivered, "a paused stream delivers nothing")

		res = b.do(t, "PATCH", "/v1/audit/streams/"+st.ID, b.key, map[string]any{"status": "active"})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		ids = waitDelivered(4)
		require.Equal(t, pausedID, ids[3])
		require.Len(t, ids, 4, "every matching event once")
		got := b.getStream(t, st.ID)
		require.EqualValues(t, 4, got.EventsDelivered)
		require.Nil(t, got.Error)
		require.Less(t, got.LagSeconds, 30.0)

		families := scrape(t, b.testBundle)
		lag := sample(families, "audex_stream_lag_seconds", map[string]string{"stream": st.ID})
		require.GreaterOrEqual(t, lag, 0.0, "the active stream's lag is a gauge")
		require.Less(t, lag, 30.0)
		require.GreaterOrEqual(t, sample(families, "audex_stream_events_total", map[string]string{"sink": "file"}), 4.0,
			"the worker runs in this process: its counters are served here")
	})

	t.Run("AnotherTenantSeesNoneOfIt", func(t *testing.T) {
		t.Parallel()
		b := setupExports(t, false)
		st := b.createStream(t, map[string]any{"destination": map[string]any{"name": "local"}, "format": "jsonl"})
		otherKey := storetest.NewKey(t, b.pool, storetest.NewTenant(t), audex.ScopeExport)
		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/audit/streams/" + st.ID},
			{"GET", "/v1/audit/streams/" + st.ID + "/batches"},
			{"DELETE", "/v1/audit/streams/" + st.ID},
		} {
			require.Equal(t, http.StatusNotFound, b.do(t, r.method, r.path, otherKey, nil).status, "%s %s", r.method, r.path)
		}
		require.Equal(t, http.StatusNotFound, b.do(t, "PATCH", "/v1/audit/streams/"+st.ID, otherKey, map[string]any{"status": "paused"}).status)
		var list struct {
			Streams []audex.Stream `json:"streams"`
		}
		b.do(t, "GET", "/v1/audit/streams", otherKey, nil).decode(t, &list)
		require.Empty(t, list.Streams)
		require.Equal(t, audex.StreamActive, b.getStream(t, st.ID).Status)
	})
}
