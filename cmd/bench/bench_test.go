package main

import (
	"encoding/json"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// The pure parts of the benchmark: no database, no server.

// Ingest's rules (internal/api/ingest.go, docs/api.md) that the generated
// events must pass, or the HTTP figures would measure refusals.
var (
	eventIDRe = regexp.MustCompile(`^[A-Za-z0-9_.:][A-Za-z0-9_.:-]{0,127}$`)
	actionRe  = regexp.MustCompile(`^[a-z0-9_.:][a-z0-9_.:-]{0,127}$`)
)

func someEvents(seed, salt uint64, n int) []audex.Event {
	gen := newGenerator(seed, salt, populationFor(100_000))
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	tl := newTimeline(end.AddDate(0, 0, -loadDays), end, n)
	events := make([]audex.Event, n)
	for i := range events {
		events[i] = gen.next(tl.at(i))
	}
	return events
}

func TestGenerator(t *testing.T) {
	t.Parallel()

	t.Run("DeterministicForASeed", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, someEvents(1, 7, 500), someEvents(1, 7, 500))
		require.NotEqual(t, someEvents(1, 7, 50), someEvents(2, 7, 50), "another seed")
		require.NotEqual(t, someEvents(1, 7, 50), someEvents(1, 8, 50), "another salt")
	})

	t.Run("EventsPassTheIngestRules", func(t *testing.T) {
		t.Parallel()
		text := func(name string, s *string, maxChars int) {
			require.NotNil(t, s, name)
			require.True(t, utf8.ValidString(*s), name)
			require.LessOrEqual(t, utf8.RuneCountInString(*s), maxChars, name)
		}
		for _, e := range someEvents(1, 1, 20_000) {
			require.Regexp(t, eventIDRe, e.ID)
			require.True(t, strings.HasPrefix(e.ID, "evt_"), e.ID)
			id, err := ulid.ParseStrict(strings.TrimPrefix(e.ID, "evt_"))
			require.NoError(t, err)
			require.Equal(t, e.OccurredAt.Truncate(time.Millisecond), ulid.Time(id.Time()).UTC(), "a ULID of occurred_at, as the server assigns")
			require.False(t, e.ReceivedAt.Before(e.OccurredAt))

			require.Regexp(t, actionRe, e.Action)
			require.False(t, strings.HasPrefix(e.Action, audex.ReservedActionPrefix))
			require.NotEmpty(t, e.Actor.ID)
			require.False(t, e.Actor.IsSystem())
			text("actor.id", &e.Actor.ID, 512)
			text("actor.type", e.Actor.Type, 512)
			text("actor.name", e.Actor.Name, 512)
			require.NotNil(t, e.Target)
			text("target.id", e.Target.ID, 512)
			text("target.type", e.Target.Type, 512)
			if e.Target.Name != nil {
				text("target.name", e.Target.Name, 512)
			}
			for _, id := range []string{e.Actor.ID, *e.Target.ID} {
				require.NotContains(t, "=+-@\t\r", id[:1], "no formula-like ids")
			}
			text("resource", e.Resource, 2048)
			require.LessOrEqual(t, len(*e.Resource), 2400)
			text("user_agent", e.UserAgent, 2048)
			text("path", e.Path, 2048)
			text("request_id", e.RequestID, 512)
			text("method", e.Method, 32)
			_, err = netip.ParseAddr(*e.SourceIP)
			require.NoError(t, err)
			require.GreaterOrEqual(t, *e.StatusCode, 100)
			require.LessOrEqual(t, *e.StatusCode, 599)
			require.GreaterOrEqual(t, *e.DurationMS, int64(0))
			require.NotNil(t, e.Success)
			var metadata map[string]any
			require.NoError(t, json.Unmarshal(e.Metadata, &metadata), "a JSON object")
			require.LessOrEqual(t, len(e.Metadata), 16<<10)
		}
	})

	t.Run("RareActionsAreRareAndCommonOnesCommon", func(t *testing.T) {
		t.Parallel()
		counts := map[string]int{}
		for _, e := range someEvents(1, 1, 50_000) {
			counts[e.Action]++
		}
		require.Equal(t, commonActions[0].name, mostCommon(counts))
		for _, a := range rareActions {
			require.Less(t, counts[a.name], 50, a.name)
		}
	})

	t.Run("IngestBodyIsTheSDKsShape", func(t *testing.T) {
		t.Parallel()
		e := someEvents(1, 1, 1)[0]
		body, err := ingestBody([]client.NewEvent{newEvent(&e)})
		require.NoError(t, err)
		var sent struct {
			Events []map[string]json.RawMessage `json:"events"`
		}
		require.NoError(t, json.Unmarshal(body, &sent))
		require.Len(t, sent.Events, 1)
		got := sent.Events[0]
		require.NotContains(t, got, "id", "the server assigns it")
		require.NotContains(t, got, "received_at", "ingest refuses it")
		// Every other field of the stored shape is sent, with its value.
		var stored map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(e.AppendJSON(nil), &stored))
		delete(stored, "id")
		delete(stored, "received_at")
		for name, v := range stored {
			require.Contains(t, got, name)
			require.JSONEq(t, string(v), string(got[name]), name)
		}
	})

	t.Run("CopyRowFillsTheStoresColumns", func(t *testing.T) {
		t.Parallel()
		e := someEvents(1, 1, 1)[0]
		row := store.EventCopyRow(bigTenant, &e)
		require.Len(t, row, len(store.EventCopyColumns))
		require.Equal(t, []any{bigTenant, e.ID, e.OccurredAt}, row[:3])
	})
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	end := start.AddDate(0, 0, 30).Add(90 * time.Minute)
	tl := newTimeline(start, end, 10_000)
	prev, weekday, weekend := start, 0, 0
	for i := range 10_000 {
		at := tl.at(i)
		require.False(t, at.Before(prev), "never decreases")
		require.True(t, !at.Before(start) && at.Before(end), at)
		prev = at
		if wd := at.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		} else {
			weekday++
		}
	}
	// Per day, weekends are quieter: 0.4 of a weekday.
	require.Less(t, float64(weekend)/9, 0.6*float64(weekday)/21)
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[len(ds)-1-i] = time.Duration(i+1) * time.Millisecond // unsorted
	}
	require.Equal(t, 50*time.Millisecond, percentile(ds, 0.5))
	require.Equal(t, 99*time.Millisecond, percentile(ds, 0.99))
	require.Equal(t, 100*time.Millisecond, percentile(ds, 1))
	require.Equal(t, time.Millisecond, percentile(ds, 0.001))
	require.Equal(t, time.Duration(0), percentile(nil, 0.5))
	require.Equal(t, 100*time.Millisecond, ds[0], "the input is left as it was")
}

func TestTimeCalls(t *testing.T) {
	t.Parallel()
	var calls []int
	times, err := timeCalls(2, 3, func(i int) error {
		calls = append(calls, i)
		if i >= 2 {
			time.Sleep(time.Duration(i) * time.Millisecond) // only the timed calls take time
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2, 3, 4}, calls, "the warm-up calls, then the timed ones")
	require.Len(t, times, 3)
	for i, d := range times {
		require.GreaterOrEqual(t, d, time.Duration(i+2)*time.Millisecond, "call %d's own time", i+2)
	}

	calls = nil
	failed := errors.New("refused")
	_, err = timeCalls(1, 5, func(i int) error {
		calls = append(calls, i)
		if i == 2 {
			return failed
		}
		return nil
	})
	require.ErrorIs(t, err, failed)
	require.Equal(t, []int{0, 1, 2}, calls, "it stops at the first error")
}

func TestSummarisePlan(t *testing.T) {
	t.Parallel()
	plan := `Limit (actual rows=101 loops=1)
  ->  Merge Append (actual rows=101 loops=1)
        Sort Key: events.occurred_at DESC, events.id DESC
        ->  Index Scan Backward using events_2026_11_tenant_id_action_occurred_at_id_idx on events_2026_11 events_1 (actual rows=70 loops=1)
              Index Cond: ((tenant_id = 'bench_big'::text) AND (action = 'document.viewed'::text))
        ->  Index Scan Backward using events_2026_12_tenant_id_action_occurred_at_id_idx on events_2026_12 events_2 (actual rows=32 loops=1)
        ->  Seq Scan on events_default events_3 (actual rows=0 loops=1)
        ->  Index Scan using events_2026_10_tenant_id_occurred_at_id_idx on events_2026_10 events_4 (actual rows=0 loops=1)`
	require.Equal(t, "merge append, index backward (action), index (occurred_at)", summarisePlan(plan))

	withFilter := `Sort (actual rows=10 loops=1)
  ->  Append (actual rows=10 loops=1)
        ->  Seq Scan on events_2026_11 events_1 (actual rows=0 loops=1)
              Rows Removed by Filter: 12`
	require.Equal(t, "sort, append, seq scan", summarisePlan(withFilter), "a seq scan that filtered rows counts")
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1_000_001: "1,000,001", -12345: "-12,345"} {
		require.Equal(t, want, thousands(n))
	}
	require.Equal(t, "1.5", ms(1500*time.Microsecond))
	counts := map[string]int{"a": 5, "b": 9, "c": 9, "d": 1}
	require.Equal(t, "b", mostCommon(counts), "the least key on a tie")
	require.Equal(t, "a", nearest(counts, 4))
	require.Equal(t, "d", nearest(counts, 0))
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	env := func(vars map[string]string) func(string) string {
		return func(name string) string { return vars[name] }
	}
	cfg, err := loadConfig(env(nil))
	require.NoError(t, err)
	require.Equal(t, 1_000_000, cfg.events)
	require.Equal(t, laterPhases, cfg.phases)
	require.Equal(t, defaultDatabaseURL, cfg.databaseURL)

	cfg, err = loadConfig(env(map[string]string{"BENCH_EVENTS": "10_000_000", "BENCH_PHASES": "none"}))
	require.NoError(t, err)
	require.Equal(t, 10_000_000, cfg.events)
	require.Empty(t, cfg.phases)
	require.Equal(t, 50*time.Millisecond, cfg.listTargetP99, "the target at ten million")

	for name, value := range map[string]string{"BENCH_EVENTS": "100", "BENCH_INGEST_BATCH": "1001", "BENCH_PHASES": "summary,nap", "BENCH_SEED": "x"} {
		_, err := loadConfig(env(map[string]string{name: value}))
		require.ErrorContains(t, err, name)
	}

	s, err := loadLoadSettings(env(map[string]string{"LOAD_SECONDS": "30"}))
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, s.duration)
	_, err = loadLoadSettings(env(map[string]string{"LOAD_CLIENTS": "65"}))
	require.ErrorContains(t, err, "LOAD_CLIENTS")
}
