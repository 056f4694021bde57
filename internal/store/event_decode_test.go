package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// TestDecodeEvent holds the decoder of raw event rows against pgx's Scan,
// row by row, for events with every optional field absent, every field
// set (awkward text and metadata), each kind of field alone, and times
// before and after PostgreSQL's epoch (2000) to the microsecond; and
// requires that lists read through it.
func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	pool, tenant := storetest.Pool(t), storetest.NewTenant(t)
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	full := newEvent("full", at("2026-11-30T23:59:59.999999Z"))
	full.Action = "doc.ünïcödé"
	full.Actor = audex.Actor{ID: "alice", Type: ptr("user"), Name: ptr("Ålice \"A\" <a@x>")}
	full.Target = &audex.Target{ID: ptr("doc-1"), Type: ptr("document"), Name: ptr("")}
	full.Resource, full.SourceIP, full.UserAgent = ptr("projects/p1/docs/d1"), ptr("2001:db8::1"), ptr("curl/8 \u2028")
	full.RequestID, full.Method, full.Path = ptr("req_1"), ptr("DELETE"), ptr("/v1/x?y=z")
	full.StatusCode, full.Success, full.DurationMS = ptr(-1), ptr(false), ptr(int64(1)<<40)
	full.Metadata = []byte(`{"a": [1, 2.5, null, true], "<b>": "\u2029 &", "c": {"d": ""}}`)
	onlyTargetType := newEvent("target-type", at("1999-12-31T23:59:59.999999Z"))
	onlyTargetType.Target = &audex.Target{Type: ptr("secret")}
	zeros := newEvent("zeros", at("1969-07-20T20:17:40.000001Z"))
	zeros.StatusCode, zeros.Success, zeros.DurationMS = ptr(0), ptr(true), ptr(int64(0))
	late := newEvent("late", at("2999-01-01T00:00:00Z"))
	late.SourceIP = ptr("10.0.0.1")
	events := []audex.Event{newEvent("bare", at("2000-01-01T00:00:00Z")), full, onlyTargetType, zeros, late}
	_, err := store.InsertEvents(t.Context(), pool, tenant, events)
	require.NoError(t, err)

	rows, err := pool.Query(t.Context(), `SELECT `+store.SelectEventColumns+` FROM events WHERE tenant_id = $1 ORDER BY occurred_at, id`, tenant)
	require.NoError(t, err)
	var scanned []audex.Event
	for rows.Next() {
		decoded, ok := store.DecodeEvent(rows.FieldDescriptions(), rows.RawValues())
		require.True(t, ok, "the row is decoded, not left to Scan")
		want, err := store.ScanEventColumns(rows)
		require.NoError(t, err)
		require.Equal(t, want, decoded)
		scanned = append(scanned, want)
	}
	require.NoError(t, rows.Err())
	require.Len(t, scanned, len(events))
	require.Equal(t, at("1969-07-20T20:17:40.000001Z"), scanned[0].OccurredAt)
	require.Equal(t, at("1999-12-31T23:59:59.999999Z"), scanned[1].OccurredAt)

	listed, err := store.ListEvents(t.Context(), pool, tenant, audex.Filter{}, audex.OrderAsc, nil, 100)
	require.NoError(t, err)
	require.Equal(t, scanned, listed)

	// A row in another shape is left to Scan.
	var one pgx.Rows
	one, err = pool.Query(t.Context(), `SELECT `+store.SelectEventColumns+`, 1 FROM events WHERE tenant_id = $1 LIMIT 1`, tenant)
	require.NoError(t, err)
	defer one.Close()
	require.True(t, one.Next())
	_, ok := store.DecodeEvent(one.FieldDescriptions(), one.RawValues())
	require.False(t, ok)
}
