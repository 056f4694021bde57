package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
)

// streamedIDs reads the stream's delivered batches back from the folder
// (sinktest.ReadStreamChain) and returns the delivered ids in order and
// the keys of every object the batches name.
func (b *processBundle) streamedIDs(t *testing.T, s audex.Stream) (ids []string, keys map[string]bool) {
	t.Helper()
	batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 100_000)
	require.NoError(t, err)
	sink, err := sinks.New(t.Context(), sinks.Config{Type: "file", Bucket: b.folder}, os.Getenv)
	require.NoError(t, err)
	ids, named := sinktest.ReadStreamChain(t, sink, batches)
	keys = map[string]bool{}
	for _, k := range named {
		keys[k] = true
	}
	return ids, keys
}

func TestStreamUnderWorkerKills(t *testing.T) {
	t.Parallel()
	b := setupProcesses(t)
	s := audex.Stream{ID: audex.NewID("str"), TenantID: b.tenant, Format: "jsonl", Compression: "none",
		Filters: []byte("{}"), IntervalSeconds: 1,
		Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: b.folder}}
	s.KeyPrefix = s.ID + "/"
	require.NoError(t, store.CreateStream(t.Context(), b.pool, &s))

	// Ingest for a while: batches of 40, one in five of them late (events
	// that occurred a month ago); every acknowledged id is kept.
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	ingested := make(chan struct{})
	go func() {
		defer close(ingested)
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			at := time.Now()
			if n%5 == 4 {
				at = at.AddDate(0, -1, 0)
			}
			batch := make([]audex.Event, 40)
			for i := range batch {
				batch[i] = audex.Event{ID: fmt.Sprintf("s%05d-%02d", n, i), OccurredAt: at, Action: "act.stream", Actor: audex.Actor{ID: "a"}, Metadata: []byte("{}")}
			}
			if _, err := store.InsertEvents(t.Context(), b.pool, b.tenant, batch); err != nil {
				continue // not acknowledged
			}
			mu.Lock()
			for _, e := range batch {
				acked = append(acked, e.ID)
			}
			mu.Unlock()
		}
	}()

	// Three workers in turn, the first two killed mid-stream.
	w := b.startWorker(t)
	for range 2 {
		require.Eventually(t, func() bool {
			st, err := store.GetStreamByID(t.Context(), b.pool, s.ID)
			require.NoError(t, err)
			return st.BatchesDelivered >= 2
		}, 60*time.Second, 20*time.Millisecond)
		time.Sleep(1500 * time.Millisecond) // mid-batch, at some point
		w.kill(t)
		w = b.startWorker(t)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	<-ingested
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()

	require.Eventually(t, func() bool {
		st, err := store.GetStreamByID(t.Context(), b.pool, s.ID)
		require.NoError(t, err)
		return st.EventsDelivered >= int64(len(want))
	}, 90*time.Second, 100*time.Millisecond, "the stream catches up")
	ids, keys := b.streamedIDs(t, s)
	require.Len(t, ids, len(want), "no event doubled")
	require.ElementsMatch(t, want, ids, "every acknowledged event once")

	// Nothing else stored: no part of a killed attempt beside the batches'.
	var stray []string
	require.NoError(t, filepath.WalkDir(filepath.Join(b.folder, s.ID), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		key, _ := filepath.Rel(b.folder, path)
		// A killed upload may leave the file sink's temporary file, which
		// List does not show and no reader takes for an object.
		if key = filepath.ToSlash(key); !keys[key] && !strings.HasPrefix(d.Name(), ".audex-tmp-") {
			stray = append(stray, key)
		}
		return nil
	}))
	require.Empty(t, stray, "objects that no batch names")
}
