package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestSealWorker(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	keys, err := integrity.ParseKeys(storetest.LogKey(t))
	require.NoError(t, err)
	events := func(prefix string, n int) []audex.Event {
		out := make([]audex.Event, n)
		for i := range out {
			out[i] = audex.Event{ID: fmt.Sprintf("%s-%03d", prefix, i), OccurredAt: time.Now().Add(-time.Duration(i) * time.Hour),
				Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}
		}
		return out
	}
	other := storetest.NewTenant(t)
	b.ingest(t, b.tenant, events("a", 30))
	b.ingest(t, other, events("o", 12))
	w, tx := newWorker(t, &jobs.SealWorker{Pool: b.pool, Logger: b.logger, Sealer: &jobs.LogSealer{Name: "audex.test", Keys: keys}}), b.tx(t)
	work := func(t *testing.T) {
		t.Helper()
		res, err := w.Work(t.Context(), t, tx, queue.SealArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
	}
	// latest returns the tenant's latest checkpoint, checked with the
	// verifier keys.
	latest := func(tenant string) integrity.Checkpoint {
		_, note, err := store.LatestLogCheckpoint(t.Context(), b.pool, tenant)
		require.NoError(t, err)
		c, err := integrity.OpenCheckpoint([]byte(note), keys.VerifierKeys())
		require.NoError(t, err)
		require.Equal(t, "audex.test/"+tenant, c.Origin)
		return c
	}

	work(t)
	require.EqualValues(t, 25+30, latest(b.tenant).Size, "every tenant's log is sealed (the bundle's 25 events first)")
	require.EqualValues(t, 12, latest(other).Size)
	b.ingest(t, b.tenant, events("b", 5))
	work(t)
	grown := latest(b.tenant)
	require.EqualValues(t, 25+35, grown.Size)
	work(t)
	require.Equal(t, grown, latest(b.tenant), "a run with nothing new signs nothing new")
}
