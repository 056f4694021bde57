package api_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

func TestExportToObjectStoreFaults(t *testing.T) {
	t.Parallel()

	for _, backend := range []struct {
		name    string
		private sinktest.PrivateStore
	}{{"S3", sinktest.PrivateMinIO}, {"GCS", sinktest.PrivateFakeGCS}, {"Azure", sinktest.PrivateAzurite}} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()

			t.Run("ServerStoppedMidExportAndStartedAgainCompletes", func(t *testing.T) {
				t.Parallel()
				cfg, getenv, stop, start := backend.private(t)
				b := newExportBundle(t, exportOptions{worker: true,
					extra: map[string]sinks.Config{"flaky": cfg}, getenvs: map[string]func(string) string{"flaky": getenv}})
				b.seed(t, 40_000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
				id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "jsonl",
					"destination": map[string]any{"name": "flaky"}, "part_max_records": 400,
					"filters": map[string]any{"action_prefix": "doc."}})
				var e audex.Export
				require.Eventually(t, func() bool {
					b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil).decode(t, &e)
					return e.Progress.PartsWritten >= 5
				}, 30*time.Second, 5*time.Millisecond)
				stop()
				time.Sleep(3 * time.Second)
				start()
				e = b.waitExport(t, id)
				require.Equal(t, "completed", e.Status, "%+v", e.Error)
				requireSameIDs(t, ids(b.listAll(t, "order=asc&limit=1000&action_prefix=doc.")), b.readParts(t, e))
			})

			if backend.name != "S3" {
				return
			}
			t.Run("AStreamLagsWhileTheServerIsDownAndCatchesUpExactly", func(t *testing.T) {
				t.Parallel()
				cfg, getenv, stop, start := backend.private(t)
				b := newExportBundle(t, exportOptions{worker: true,
					extra: map[string]sinks.Config{"flaky": cfg}, getenvs: map[string]func(string) string{"flaky": getenv}})
				st := b.createStream(t, map[string]any{"destination": map[string]any{"name": "flaky"}, "format": "jsonl",
					"interval_seconds": 1, "filters": map[string]any{"action": "doc.read"}})
				var want []string
				ingestFor := func(d time.Duration) {
					for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
						want = append(want, b.ingest(t, event("doc.read", "alice"), event("doc.read", "bob")).IDs...)
					}
				}
				ingestFor(2 * time.Second)
				stop()
				ingestFor(4 * time.Second)
				var down audex.Stream
				b.do(t, "GET", "/v1/audit/streams/"+st.ID, b.key, nil).decode(t, &down)
				require.NotNil(t, down.Error, "the stream says it lags")
				require.Equal(t, "delivery_retrying", down.Error.Code)
				start()
				ingestFor(time.Second)
				var got []string
				require.Eventually(t, func() bool {
					got = b.streamedIDsFrom(t, st.ID, "flaky")
					return len(got) >= len(want)
				}, 90*time.Second, 200*time.Millisecond, "the stream catches up")
				require.ElementsMatch(t, want, got, "every event once")
			})
			t.Run("MissingBucketFailsWithinSecondsNamingIt", func(t *testing.T) {
				t.Parallel()
				cfg, _ := sinktest.NewBucket(t, "s3")
				cfg.Bucket = sinktest.RandomName("audex-absent-")
				b := setupExportsWith(t, map[string]sinks.Config{"absent": cfg})
				b.ingest(t, event("doc.read", "alice"))
				started := time.Now()
				id := b.createExport(t, map[string]any{"since": "2020-01-01", "until": "2100-01-01", "format": "csv", "destination": map[string]any{"name": "absent"}})
				e := b.waitExport(t, id)
				require.Less(t, time.Since(started), 15*time.Second)
				require.Equal(t, "failed", e.Status)
				require.Equal(t, "bucket_not_found", e.Error.Code)
				require.Contains(t, e.Error.Message, cfg.Bucket)
				require.NotContains(t, e.Error.Message, os.Getenv("AUDEX_TEST_S3_SECRET_ACCESS_KEY"))
				var failed listAnswer
				b.do(t, "GET", "/v1/audit/events?action=audit.export_failed", b.key, nil).decode(t, &failed)
				require.Len(t, failed.Events, 1)
			})
		})
	}
}
