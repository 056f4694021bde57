package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/servertest"
)

// newClient starts a server and returns a client with its tenant's key.
func newClient(t *testing.T, env ...string) (*client.Client, *servertest.Server) {
	t.Helper()
	srv := servertest.Start(t, env...)
	c, err := client.New(srv.URL, srv.Key, client.WithRetries(8, 50*time.Millisecond))
	require.NoError(t, err)
	return c, srv
}

// docs returns n events doc.<i%3> by actor u<i%7>, a minute apart from
// start, with ids e00000...
func docs(start time.Time, n int) []client.NewEvent {
	events := make([]client.NewEvent, n)
	for i := range events {
		ok := i%5 != 0
		events[i] = client.NewEvent{ID: fmt.Sprintf("e%05d", i), OccurredAt: start.Add(time.Duration(i) * time.Minute),
			Action: fmt.Sprintf("doc.%d", i%3), Actor: client.Actor{ID: fmt.Sprintf("u%d", i%7)}, Success: &ok,
			Metadata: map[string]any{"i": i}}
	}
	return events
}

// collect drains an iterator, failing on its error.
func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

func TestClient(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newClient(t)
	start := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	events := docs(start, 2500)
	for from := 0; from < len(events); from += 1000 {
		res, err := c.Events.Ingest(ctx, events[from:min(from+1000, len(events))])
		require.NoError(t, err)
		require.Equal(t, min(1000, len(events)-from), res.Accepted)
	}

	t.Run("IngestAgainReportsDuplicates", func(t *testing.T) {
		res, err := c.Events.Ingest(ctx, events[:3])
		require.NoError(t, err)
		require.Equal(t, 0, res.Accepted)
		require.Equal(t, 3, res.Duplicates)
		require.Equal(t, []string{"e00000", "e00001", "e00002"}, res.IDs)
	})

	t.Run("ListFollowsCursorsToTheEnd", func(t *testing.T) {
		got := collect(t, c.Events.List(ctx, client.ListParams{Filters: client.Filters{ActionPrefix: "doc."}, Ascending: true, PageSize: 97}))
		require.Len(t, got, 2500)
		for i, ev := range got {
			require.Equal(t, fmt.Sprintf("e%05d", i), ev.ID)
		}
		newest := collect(t, c.Events.List(ctx, client.ListParams{Filters: client.Filters{Actions: []string{"doc.1"}, ActorID: "u3"},
			Since: start, Until: start.Add(24 * time.Hour)}))
		var want []string
		for i := 24*60 - 1; i >= 0; i-- {
			if i%3 == 1 && i%7 == 3 {
				want = append(want, fmt.Sprintf("e%05d", i))
			}
		}
		require.Equal(t, want, ids(newest))
	})

	t.Run("ListQueryPassesParametersAsGiven", func(t *testing.T) {
		q := url.Values{"from": {"2026-04-01"}, "to": {"2026-04-01T10:00:00Z"}, "action": {"doc.1,doc.2"}, "order": {"asc"}, "limit": {"7"}}
		got := collect(t, c.Events.ListQuery(ctx, q))
		var want []string
		for i := range 600 {
			if i%3 != 0 {
				want = append(want, fmt.Sprintf("e%05d", i))
			}
		}
		require.Equal(t, want, ids(got), "aliases and comma-separated actions, paged by 7")
		require.Equal(t, url.Values{"from": {"2026-04-01"}, "to": {"2026-04-01T10:00:00Z"}, "action": {"doc.1,doc.2"}, "order": {"asc"}, "limit": {"7"}}, q,
			"the caller's values keep no cursor")

		var apiErr *client.Error
		n := 0
		for _, err := range c.Events.ListQuery(ctx, url.Values{"since": {"yesterday"}}) {
			require.ErrorAs(t, err, &apiErr)
			n++
		}
		require.Equal(t, 1, n)
		require.Equal(t, "invalid_argument", apiErr.Code)
		require.Equal(t, "since", apiErr.Field)
		require.Contains(t, apiErr.Message, "RFC 3339")
	})

	t.Run("BreakingOutOfListStops", func(t *testing.T) {
		n := 0
		for _, err := range c.Events.List(ctx, client.ListParams{PageSize: 10}) {
			require.NoError(t, err)
			if n++; n == 15 {
				break
			}
		}
		require.Equal(t, 15, n)
	})

	t.Run("GetAndDelete", func(t *testing.T) {
		ev, err := c.Events.Get(ctx, "e00042")
		require.NoError(t, err)
		require.Equal(t, "doc.0", ev.Action)
		require.JSONEq(t, `{"i":42}`, string(ev.Metadata))
		require.NoError(t, c.Events.Delete(ctx, "e02499"))
		_, err = c.Events.Get(ctx, "e02499")
		require.True(t, client.IsNotFound(err), "%v", err)
	})

	t.Run("BadInputIsAnError", func(t *testing.T) {
		_, err := c.Events.Ingest(ctx, []client.NewEvent{{Action: "x"}})
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusBadRequest, apiErr.Status)
		require.Equal(t, "invalid_argument", apiErr.Code)
		require.Equal(t, "events[0].actor.id", apiErr.Field)
		for _, err := range c.Events.List(ctx, client.ListParams{Since: start, Until: start.Add(-time.Hour)}) {
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, "invalid_argument", apiErr.Code)
		}
	})

	t.Run("Summary", func(t *testing.T) {
		sum, err := c.Events.Summary(ctx, client.ListParams{Since: start, Until: start.Add(1000 * time.Minute)})
		require.NoError(t, err)
		require.EqualValues(t, 1000, sum.TotalEvents)
		require.EqualValues(t, 200, sum.FailedEvents)
		require.EqualValues(t, 334, sum.ActionsBreakdown["doc.0"])
		require.Len(t, sum.TopActors, 7)
	})

	t.Run("DownloadStreams", func(t *testing.T) {
		body, err := c.Events.Download(ctx, client.DownloadRequest{Format: "ndjson", Since: start, Until: start.Add(100 * time.Minute),
			Filters: client.Filters{Actions: []string{"doc.2"}}})
		require.NoError(t, err)
		defer body.Close()
		lines := 0
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			lines++
		}
		require.NoError(t, sc.Err())
		require.Equal(t, 33, lines) // i < 100 with i%3 == 2
	})

	t.Run("ExportCreateWaitListCancel", func(t *testing.T) {
		destinations, err := c.Exports.Destinations(ctx)
		require.NoError(t, err)
		require.Contains(t, destinations, client.Destination{Name: "local", Type: "file", Exports: true, Streams: true})
		created, err := c.Exports.Create(ctx, client.ExportRequest{Since: start, Until: start.Add(2500 * time.Minute), Format: "jsonl",
			Destination: "local", Filters: client.Filters{ActionPrefix: "doc."}, PartMaxRecords: 500})
		require.NoError(t, err)
		require.EqualValues(t, 2499, created.EstimatedRecords)
		var seen []client.Export
		e, err := c.Exports.Wait(ctx, created.ID, client.WaitOptions{FirstPoll: 10 * time.Millisecond, Progress: func(e client.Export) { seen = append(seen, e) }})
		require.NoError(t, err)
		require.Equal(t, audex.ExportCompleted, e.Status, "%+v", e.Error)
		require.EqualValues(t, 2499, *e.RecordCount)
		require.Len(t, e.Files, 5)
		require.NotEmpty(t, seen)
		require.Equal(t, e.Status, seen[len(seen)-1].Status, "the last progress call sees the end")

		listed := collect(t, c.Exports.List(ctx, ""))
		require.Contains(t, exportIDs(listed), created.ID)
		require.Contains(t, exportIDs(collect(t, c.Exports.List(ctx, "completed"))), created.ID)
		require.NotContains(t, exportIDs(collect(t, c.Exports.List(ctx, "failed"))), created.ID)

		_, err = c.Exports.Cancel(ctx, created.ID)
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusConflict, apiErr.Status)

		// A queued export cancelled at once.
		big, err := c.Exports.Create(ctx, client.ExportRequest{Since: start, Until: start.Add(2500 * time.Minute), Format: "csv",
			Destination: "local", PartMaxRecords: 1})
		require.NoError(t, err)
		cancelled, err := c.Exports.Cancel(ctx, big.ID)
		require.NoError(t, err)
		require.Equal(t, audex.ExportCancelled, cancelled.Status)

		_, err = c.Exports.Get(ctx, "exp_nope")
		require.True(t, client.IsNotFound(err))
	})

	t.Run("PurgeAndRetention", func(t *testing.T) {
		before := start.Add(100 * time.Minute)
		n, err := c.Purges.DryRun(ctx, before)
		require.NoError(t, err)
		require.EqualValues(t, 100, n)
		id, err := c.Purges.Create(ctx, before)
		require.NoError(t, err)
		p, err := c.Purges.Wait(ctx, id, 20*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, audex.PurgeCompleted, p.Status)
		require.EqualValues(t, 100, p.Deleted)
		again, err := c.Purges.Get(ctx, id)
		require.NoError(t, err)
		require.Equal(t, p, again)
		_, err = c.Purges.Get(ctx, "prg_missing")
		require.True(t, client.IsNotFound(err), "%v", err)

		days, err := c.Purges.Retention(ctx)
		require.NoError(t, err)
		require.Nil(t, days)
		require.NoError(t, c.Purges.SetRetention(ctx, ptr(400)))
		days, err = c.Purges.Retention(ctx)
		require.NoError(t, err)
		require.Equal(t, 400, *days)
		require.NoError(t, c.Purges.SetRetention(ctx, nil))
		days, err = c.Purges.Retention(ctx)
		require.NoError(t, err)
		require.Nil(t, days)
		var apiErr *client.Error
		require.ErrorAs(t, c.Purges.SetRetention(ctx, ptr(0)), &apiErr)
		require.Equal(t, "retain_days", apiErr.Field)
	})
}

func TestEmitter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, srv := newClient(t)
	count := func(prefix string) int {
		var n int
		require.NoError(t, srv.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND action LIKE $2 || '%'`, srv.Tenant, prefix).Scan(&n))
		return n
	}

	t.Run("FullBatchesGoAtOnceAndCloseSendsTheRest", func(t *testing.T) {
		em := c.NewEmitter(client.EmitterOptions{BatchSize: 100, FlushInterval: time.Hour})
		for i := range 2345 {
			require.NoError(t, em.Emit(client.NewEvent{Action: "size.emit", Actor: client.Actor{ID: fmt.Sprint(i % 13)}}))
		}
		require.Eventually(t, func() bool { return count("size.") == 2300 }, 10*time.Second, 10*time.Millisecond, "the 23 full batches")
		time.Sleep(100 * time.Millisecond)
		require.Equal(t, 2300, count("size."), "a partial batch waits for its interval")
		require.NoError(t, em.Close(ctx))
		require.Equal(t, 2345, count("size."))
		require.ErrorIs(t, em.Emit(client.NewEvent{Action: "size.after", Actor: client.Actor{ID: "x"}}), client.ErrEmitterClosed)
		require.ErrorIs(t, em.Close(ctx), client.ErrEmitterClosed)
	})

	t.Run("APartialBatchGoesAfterTheInterval", func(t *testing.T) {
		em := c.NewEmitter(client.EmitterOptions{BatchSize: 1000, FlushInterval: 50 * time.Millisecond})
		defer em.Close(ctx)
		for range 3 {
			require.NoError(t, em.Emit(client.NewEvent{Action: "time.emit", Actor: client.Actor{ID: "x"}}))
		}
		require.Eventually(t, func() bool { return count("time.") == 3 }, 10*time.Second, 10*time.Millisecond)
	})

	t.Run("CloseSendsWhatWaits", func(t *testing.T) {
		em := c.NewEmitter(client.EmitterOptions{BatchSize: 1000, FlushInterval: time.Hour})
		for range 10 {
			require.NoError(t, em.Emit(client.NewEvent{Action: "close.emit", Actor: client.Actor{ID: "a"}}))
		}
		require.Equal(t, 0, count("close."))
		require.NoError(t, em.Flush(ctx))
		require.Equal(t, 10, count("close."))
		for range 7 {
			require.NoError(t, em.Emit(client.NewEvent{Action: "close.emit", Actor: client.Actor{ID: "a"}}))
		}
		require.NoError(t, em.Close(ctx))
		require.Equal(t, 17, count("close."))
	})

	t.Run("ABatchTheServerRefusesIsReported", func(t *testing.T) {
		var refused atomic.Int64
		em := c.NewEmitter(client.EmitterOptions{BatchSize: 5, OnError: func(events []client.NewEvent, err error) {
			var apiErr *client.Error
			if errors.As(err, &apiErr) && apiErr.Code == "invalid_argument" {
				refused.Add(int64(len(events)))
			}
		}})
		for i := range 10 {
			action := "refused.ok"
			if i == 7 {
				action = "" // makes its batch invalid: all or nothing
			}
			require.NoError(t, em.Emit(client.NewEvent{Action: action, Actor: client.Actor{ID: "a"}}))
		}
		require.NoError(t, em.Close(ctx))
		require.EqualValues(t, 5, refused.Load())
		require.Equal(t, 5, count("refused."))

		em = c.NewEmitter(client.EmitterOptions{BatchSize: 5})
		require.NoError(t, em.Emit(client.NewEvent{Actor: client.Actor{ID: "a"}}))
		err := em.Close(ctx)
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr, "without OnError, Close returns the failure")
	})
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// One request a second per key, bursts of one: the second of two
	// requests at once gets 429 with Retry-After.
	c, srv := newClient(t, "AUDEX_RATE_LIMIT=1", "AUDEX_RATE_LIMIT_BURST=1")
	started := time.Now()
	for range 3 {
		_, err := c.Purges.Retention(ctx)
		require.NoError(t, err)
	}
	require.GreaterOrEqual(t, time.Since(started), 1500*time.Millisecond, "the client waited as told")

	noRetry, err := client.New(srv.URL, srv.Key, client.WithRetries(0, 0))
	require.NoError(t, err)
	var apiErr *client.Error
	for range 3 {
		if _, err = noRetry.Purges.Retention(ctx); err != nil {
			break
		}
	}
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusTooManyRequests, apiErr.Status)
	require.Equal(t, "rate_limited", apiErr.Code)
	require.Positive(t, apiErr.RetryAfter)

	ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = c.Purges.Retention(ctx)
	require.Error(t, err, "a wait longer than the context ends with it")
}

func ids(events []client.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func exportIDs(exports []client.Export) []string {
	out := make([]string, len(exports))
	for i, e := range exports {
		out[i] = e.ID
	}
	return out
}

func ptr[T any](v T) *T { return &v }
