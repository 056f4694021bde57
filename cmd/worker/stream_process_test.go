package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
)

// folderSink is the sink of the local destination's folder.
func (b *processBundle) folderSink(t *testing.T) sinks.Sink {
	t.Helper()
	sink, err := sinks.New(t.Context(), sinks.Config{Type: "file", Bucket: b.folder}, os.Getenv)
	require.NoError(t, err)
	return sink
}

// streamedIDs reads the stream's delivered batches back from sink
// (sinktest.ReadStreamChain), checks their signed manifests against the
// integrity log (sinktest.CheckBatchLogs), and returns the delivered ids
// in order and the keys of every object the batches name.
func (b *processBundle) streamedIDs(t *testing.T, s audex.Stream, sink sinks.Sink) (ids []string, keys map[string]bool) {
	t.Helper()
	batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 100_000)
	require.NoError(t, err)
	ids, named := sinktest.ReadStreamChain(t, sink, batches)
	logKeys, err := integrity.ParseKeys(b.logKey)
	require.NoError(t, err)
	sinktest.CheckBatchLogs(t, sink, batches, logKeys.VerifierKeys())
	keys = map[string]bool{}
	for _, k := range named {
		keys[k] = true
	}
	return ids, keys
}

// TestStreamsUnderWorkerKillsAndAnObjectStoreRestart runs ingest (late
// events too) with two streams of a 1 s interval, one to a local folder
// and one to a MinIO of the test's own; it kills the worker process twice
// mid-stream and stops MinIO for seconds in between. Each stream must
// then hold every acknowledged event once, across a chain with no gap,
// and no object beside its batches'.
func TestStreamsUnderWorkerKillsAndAnObjectStoreRestart(t *testing.T) {
	t.Parallel()
	b := setupProcesses(t)
	minio, getenv, stopMinIO, startMinIO := sinktest.PrivateMinIO(t)
	b.destinations = fmt.Sprintf(`  - name: minio
    type: s3
    bucket: %s
    region: %s
    endpoint: %s
    access_key_id_env: %s
    secret_access_key_env: %s`, minio.Bucket, minio.Region, minio.Endpoint, minio.AccessKeyIDEnv, minio.SecretAccessKeyEnv)
	b.writeConfig(t, shortTimings)
	newStream := func(d audex.ExportDestination) audex.Stream {
		s := audex.Stream{ID: audex.NewID("str"), TenantID: b.tenant, Format: "jsonl", Compression: "none",
			Filters: []byte("{}"), IntervalSeconds: 1, Destination: d}
		s.KeyPrefix = s.ID + "/"
		require.NoError(t, store.CreateStream(t.Context(), b.pool, &s))
		return s
	}
	toFolder := newStream(audex.ExportDestination{Name: "local", Type: "file", Bucket: b.folder})
	toMinIO := newStream(audex.ExportDestination{Name: "minio", Type: "s3", Bucket: minio.Bucket})

	// Ingest for a while: batches of 40, one in five of them late (events
	// that occurred a month ago); every acknowledged id is kept.
	stopIngest := backgroundIngest(30*time.Millisecond, func(n int) ([]string, bool) {
		at := time.Now()
		if n%5 == 4 {
			at = at.AddDate(0, -1, 0)
		}
		batch := make([]audex.Event, 40)
		ids := make([]string, len(batch))
		for i := range batch {
			ids[i] = fmt.Sprintf("s%05d-%02d", n, i)
			batch[i] = audex.Event{ID: ids[i], OccurredAt: at, Action: "act.stream", Actor: audex.Actor{ID: "a"}, Metadata: []byte("{}")}
		}
		_, err := store.InsertEvents(t.Context(), b.pool, b.tenant, batch)
		return ids, err == nil
	})
	defer stopIngest()
	delivered := func(s audex.Stream) audex.Stream {
		st, err := store.GetStreamByID(t.Context(), b.pool, s.ID)
		require.NoError(t, err)
		return st
	}

	// Three workers in turn, the first two killed mid-stream; MinIO is
	// down after the first kill, until the stream to it says it lags and
	// 2 s more, while the second worker runs.
	w := b.startWorker(t)
	for round := range 2 {
		require.Eventually(t, func() bool {
			return delivered(toFolder).BatchesDelivered >= int64(2+2*round) && delivered(toMinIO).BatchesDelivered >= int64(2+2*round)
		}, 60*time.Second, 20*time.Millisecond)
		time.Sleep(1500 * time.Millisecond) // mid-batch, at some point
		w.kill(t)
		w = b.startWorker(t)
		if round == 0 {
			stopMinIO()
			require.Eventually(t, func() bool {
				st := delivered(toMinIO)
				return st.Error != nil && st.Error.Code == "delivery_retrying"
			}, 30*time.Second, 50*time.Millisecond, "the stream to MinIO says it lags")
			time.Sleep(2 * time.Second)
			startMinIO()
		}
	}
	time.Sleep(2 * time.Second)
	want := stopIngest()

	minioSink, err := sinks.New(t.Context(), minio, getenv)
	require.NoError(t, err)
	for _, c := range []struct {
		stream audex.Stream
		sink   sinks.Sink
	}{{toFolder, b.folderSink(t)}, {toMinIO, minioSink}} {
		require.Eventually(t, func() bool {
			return delivered(c.stream).EventsDelivered >= int64(len(want))
		}, 90*time.Second, 100*time.Millisecond, "the stream to %s catches up", c.stream.Destination.Name)
		ids, keys := b.streamedIDs(t, c.stream, c.sink)
		require.Len(t, ids, len(want), "no event doubled (%s)", c.stream.Destination.Name)
		require.ElementsMatch(t, want, ids, "every acknowledged event once (%s)", c.stream.Destination.Name)

		// Nothing else stored: no part of a killed attempt beside the
		// batches'. (A killed upload may leave the file sink's temporary
		// file, which List does not show and no reader takes for an
		// object.)
		objects, err := c.sink.List(t.Context(), c.stream.KeyPrefix)
		require.NoError(t, err)
		var stray []string
		for _, o := range objects {
			if !keys[o.Key] {
				stray = append(stray, o.Key)
			}
		}
		require.Empty(t, stray, "objects that no batch of the stream to %s names", c.stream.Destination.Name)
	}
}
