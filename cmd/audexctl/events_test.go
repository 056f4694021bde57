package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/logtest"
)

// decodeEvents reads JSON lines of events.
func decodeEvents(t *testing.T, out string) []client.Event {
	t.Helper()
	var events []client.Event
	for _, line := range lines(out) {
		var ev client.Event
		require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
		events = append(events, ev)
	}
	return events
}

func eventIDs(events []client.Event) []string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return ids
}

func TestEventsList(t *testing.T) {
	t.Parallel()
	b := setup(t)
	events := docs(250) // more than two pages of the server's default 100
	b.ingest(t, events)

	t.Run("TableFollowsCursorsToTheEnd", func(t *testing.T) {
		res := b.run(t, "events", "list", "--action_prefix", "doc.")
		require.Equal(t, exitOK, res.code, res.stderr)
		rows := lines(res.stdout)
		require.Len(t, rows, 251)
		require.Equal(t, []string{"occurred_at", "action", "actor", "target", "id"}, strings.Fields(rows[0]))
		idColumn := strings.Index(rows[0], "id")
		for n, row := range rows[1:] {
			i := 249 - n // newest first
			ev := events[i]
			target := "-"
			if ev.Target != nil {
				target = "doc:" + *ev.Target.ID
			}
			require.Equal(t, []string{ev.OccurredAt.Format("2006-01-02T15:04:05.000000Z"), ev.Action, "user:" + ev.Actor.ID, target, ev.ID},
				strings.Fields(row))
			require.Equal(t, ev.ID, row[idColumn:], "the columns are aligned")
		}
	})

	t.Run("JSONLinesWithFilters", func(t *testing.T) {
		res := b.run(t, "events", "list", "--json", "--action", "doc.1", "--actor_id", "u3",
			"--since", "2026-04-01T01:00:00Z", "--until", "2026-04-01T03:00:00Z", "--order", "asc")
		require.Equal(t, exitOK, res.code, res.stderr)
		var want []string
		for i := 60; i < 180; i++ {
			if i%3 == 1 && i%7 == 3 {
				want = append(want, events[i].ID)
			}
		}
		got := decodeEvents(t, res.stdout)
		require.Equal(t, want, eventIDs(got))
		require.Equal(t, "doc.1", got[0].Action)
		require.Equal(t, events[73].OccurredAt, got[0].OccurredAt.UTC())

		res = b.run(t, "events", "list", "--json", "--action", "doc.1", "--action", "doc.2", "--success", "false")
		require.Equal(t, exitOK, res.code, res.stderr)
		want = nil
		for i := 249; i >= 0; i-- {
			if i%3 != 0 && i%5 == 0 {
				want = append(want, events[i].ID)
			}
		}
		require.Equal(t, want, eventIDs(decodeEvents(t, res.stdout)))
	})

	t.Run("LimitStopsAfterThatManyEvents", func(t *testing.T) {
		res := b.run(t, "events", "list", "--action_prefix", "doc.", "--json", "--limit", "120")
		require.Equal(t, exitOK, res.code, res.stderr)
		got := eventIDs(decodeEvents(t, res.stdout))
		require.Len(t, got, 120)
		require.Equal(t, "e00249", got[0])
		require.Equal(t, "e00130", got[119])

		res = b.run(t, "events", "list", "--action_prefix", "doc.", "--limit", "3")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, lines(res.stdout), 4, "the header and 3 rows")
	})

	t.Run("NothingSelectedPrintsTheHeaderOnly", func(t *testing.T) {
		res := b.run(t, "events", "list", "--actor_id", "nobody")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Equal(t, []string{"occurred_at", "action", "actor", "target", "id"}, strings.Fields(res.stdout))
	})
}

// tail runs events tail until the returned stop is called, which returns
// its exit code and stderr.
func (b *testBundle) tail(t *testing.T, stdout *logtest.Buffer, args ...string) (stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan result, 1)
	go func() {
		done <- runCLI(ctx, runOptions{env: b.env, stdout: stdout}, append([]string{"events", "tail", "--interval", "50ms"}, args...)...)
	}()
	return func() (int, string) {
		cancel()
		res := <-done
		return res.code, res.stderr
	}
}

// waitLines waits until out has n lines and returns them.
func waitLines(t *testing.T, out *logtest.Buffer, n int) []string {
	t.Helper()
	require.Eventually(t, func() bool { return len(lines(out.String())) >= n }, 15*time.Second, 10*time.Millisecond,
		"want %d lines, have:\n%s", n, out.String())
	return lines(out.String())
}

func TestEventsTail(t *testing.T) {
	t.Parallel()
	b := setup(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	event := func(id string, at time.Time) client.NewEvent {
		return client.NewEvent{ID: id, OccurredAt: at, Action: "tail.test", Actor: client.Actor{ID: "u"}}
	}
	b.ingest(t, []client.NewEvent{event("t-old-0", now.Add(-time.Hour)), event("t-old-1", now.Add(-30*time.Minute)), event("t-old-2", now.Add(-time.Minute))})
	b.ingest(t, []client.NewEvent{{Action: "other.test", Actor: client.Actor{ID: "u"}}}) // not selected

	t.Run("PrintsTheExistingEventsThenEachNewOneOnce", func(t *testing.T) {
		out := &logtest.Buffer{}
		stop := b.tail(t, out, "--action_prefix", "tail.", "--json")
		require.Equal(t, []string{"t-old-0", "t-old-1", "t-old-2"}, eventIDs(decodeEvents(t, strings.Join(waitLines(t, out, 3), "\n"))))

		b.ingest(t, []client.NewEvent{event("t-n1", now)})
		waitLines(t, out, 4)
		// In one batch: an event at the very instant of the newest printed
		// with an id before it, one at that instant after it, one that
		// arrives late (occurred 2 s before the newest printed), a new one.
		b.ingest(t, []client.NewEvent{event("t-a", now), event("t-n2", now), event("t-n0", now.Add(-2*time.Second)), event("t-n3", now.Add(time.Second))})
		waitLines(t, out, 8)
		time.Sleep(500 * time.Millisecond) // ten more polls
		code, stderr := stop()
		require.Equal(t, exitOK, code, "an interrupted tail ends well: %s", stderr)
		require.Empty(t, stderr)
		got := eventIDs(decodeEvents(t, out.String()))
		require.Equal(t, []string{"t-old-0", "t-old-1", "t-old-2", "t-n1", "t-n0", "t-a", "t-n2", "t-n3"}, got,
			"each event once; a poll prints what it finds oldest first")
	})

	t.Run("LastPrintsOnlyTheNewestExistingEvents", func(t *testing.T) {
		out := &logtest.Buffer{}
		stop := b.tail(t, out, "--action_prefix", "tail.", "--last", "2")
		rows := waitLines(t, out, 3)
		require.Equal(t, []string{"occurred_at", "action", "actor", "target", "id"}, strings.Fields(rows[0]))
		require.Equal(t, []string{"t-n2", "t-n3"}, lastColumn(rows[1:]))

		// Before the oldest of the last 2: older than what was asked for.
		b.ingest(t, []client.NewEvent{event("t-n4", now.Add(-time.Second)), event("t-n5", now.Add(2*time.Second))})
		waitLines(t, out, 4)
		time.Sleep(300 * time.Millisecond)
		code, _ := stop()
		require.Equal(t, exitOK, code)
		require.Equal(t, []string{"t-n2", "t-n3", "t-n5"}, lastColumn(lines(out.String())[1:]))
	})

	t.Run("LastZeroPrintsOnlyNewEvents", func(t *testing.T) {
		out := &logtest.Buffer{}
		stop := b.tail(t, out, "--action", "tail.test", "--last", "0", "--json")
		time.Sleep(200 * time.Millisecond) // the first polls find nothing new
		require.Empty(t, out.String())
		b.ingest(t, []client.NewEvent{event("t-n6", now.Add(3*time.Second))})
		waitLines(t, out, 1)
		time.Sleep(200 * time.Millisecond)
		code, _ := stop()
		require.Equal(t, exitOK, code)
		require.Equal(t, []string{"t-n6"}, eventIDs(decodeEvents(t, out.String())))
	})

	t.Run("ManyNewEventsArePrintedOnceEach", func(t *testing.T) {
		out := &logtest.Buffer{}
		stop := b.tail(t, out, "--action_prefix", "burst.", "--json")
		var want []string
		for batch := range 5 {
			var events []client.NewEvent
			for i := range 300 {
				id := fmt.Sprintf("b%d-%03d", batch, i)
				want = append(want, id)
				events = append(events, client.NewEvent{ID: id, OccurredAt: now.Add(time.Duration(batch*300+i) * time.Millisecond),
					Action: "burst.test", Actor: client.Actor{ID: "u"}})
			}
			b.ingest(t, events)
			time.Sleep(30 * time.Millisecond)
		}
		waitLines(t, out, len(want))
		time.Sleep(300 * time.Millisecond)
		code, _ := stop()
		require.Equal(t, exitOK, code)
		got := eventIDs(decodeEvents(t, out.String()))
		require.Len(t, got, len(want))
		slices.Sort(got)
		require.Equal(t, want, got)
	})
}

// lastColumn returns the last field of each table row: the event id.
func lastColumn(rows []string) []string {
	ids := make([]string, len(rows))
	for i, row := range rows {
		fields := strings.Fields(row)
		ids[i] = fields[len(fields)-1]
	}
	return ids
}
