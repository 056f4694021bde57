package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// streamedIDs reads the stream's delivered batches from the folder: each
// manifest's bytes against the recorded sha256 and linked to the one
// before, each part's sha256; it returns the delivered ids in order and
// the keys of every object the batches name.
func (b *processBundle) streamedIDs(t *testing.T, s audex.Stream) (ids []string, keys map[string]bool) {
	t.Helper()
	batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 100_000)
	require.NoError(t, err)
	read := func(key string) []byte {
		data, err := os.ReadFile(filepath.Join(b.folder, filepath.FromSlash(key)))
		require.NoError(t, err)
		return data
	}
	keys = map[string]bool{}
	var previous *string
	for i, batch := range batches {
		require.EqualValues(t, i+1, batch.Seq, "no gap in seq")
		require.Equal(t, previous, batch.PreviousManifestSHA256, "batch %d links to the one before", batch.Seq)
		sum := sha256.Sum256(read(*batch.ManifestKey))
		require.Equal(t, batch.ManifestSHA256, hex.EncodeToString(sum[:]))
		keys[*batch.ManifestKey] = true
		for _, f := range batch.Files {
			part := read(f.Key)
			sum := sha256.Sum256(part)
			require.Equal(t, f.SHA256, hex.EncodeToString(sum[:]), "part %s", f.Key)
			keys[f.Key] = true
			sc := bufio.NewScanner(bytes.NewReader(part))
			for sc.Scan() {
				var e struct {
					ID string `json:"id"`
				}
				require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
				ids = append(ids, e.ID)
			}
		}
		previous = &batch.ManifestSHA256
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
