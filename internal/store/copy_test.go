package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestCopyEvents(t *testing.T) {
	t.Parallel()

	// full sets every column, so that a column that EventCopyRow left out
	// or put in the wrong place would read back different.
	full := func(id string, at time.Time) audex.Event {
		s := func(v string) *string { return &v }
		code, ok, took := 201, true, int64(12)
		return audex.Event{
			ID: id, OccurredAt: at, ReceivedAt: at.Add(time.Second), Action: "doc.created",
			Actor:    audex.Actor{ID: "usr_1", Type: s("user"), Name: s("Ada")},
			Target:   &audex.Target{ID: s("doc_1"), Type: s("document"), Name: s("Plan")},
			Resource: s("projects/p1/docs/d1"), SourceIP: s("10.20.1.2"), UserAgent: s("curl/8"),
			RequestID: s("req_1"), Method: s("POST"), Path: s("/api/docs"),
			StatusCode: &code, Success: &ok, DurationMS: &took, Metadata: json.RawMessage(`{"k":"v"}`),
		}
	}

	t.Run("CopiedEventReadsBackAsStored", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		at := time.Now().UTC().Truncate(time.Microsecond)
		e := full("copied", at)
		require.NoError(t, store.CopyEvents(t.Context(), pool, [][]any{store.EventCopyRow(tenant, &e)}, true))
		got, err := store.GetEvent(t.Context(), pool, tenant, "copied")
		require.NoError(t, err)
		require.JSONEq(t, string(e.AppendJSON(nil)), string(got.AppendJSON(nil)))
	})

	t.Run("WithoutIDsTheEventIsNotFoundByID", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		e := full("only_events", time.Now().UTC())
		require.NoError(t, store.CopyEvents(t.Context(), pool, [][]any{store.EventCopyRow(tenant, &e)}, false))
		n, err := store.CountEvents(t.Context(), pool, tenant, audex.Filter{})
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		_, err = store.GetEvent(t.Context(), pool, tenant, "only_events")
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("AnIDStoredAlreadyFailsTheWhole", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		tenant := storetest.NewTenant(t)
		at := time.Now().UTC()
		_, err := store.InsertEvents(t.Context(), pool, tenant, []audex.Event{full("taken", at)})
		require.NoError(t, err)
		a, b := full("fresh", at), full("taken", at)
		err = store.CopyEvents(t.Context(), pool, [][]any{store.EventCopyRow(tenant, &a), store.EventCopyRow(tenant, &b)}, true)
		require.ErrorIs(t, err, store.ErrConflict)
		n, err := store.CountEvents(t.Context(), pool, tenant, audex.Filter{})
		require.NoError(t, err)
		require.EqualValues(t, 1, n, "nothing of the failed copy stays")
	})
}
