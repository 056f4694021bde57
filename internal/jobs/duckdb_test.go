package jobs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/testenv"
)

// duckdbRead is what scripts/duckdb-read.mjs prints of a part.
type duckdbRead struct {
	Rows   int64 `json:"rows"`
	Sample []struct {
		ID         string  `json:"id"`
		OccurredUS string  `json:"occurred_us"`
		Action     string  `json:"action"`
		Success    *bool   `json:"success"`
		StatusCode *string `json:"status_code"`
		Metadata   string  `json:"metadata"`
	} `json:"sample"`
}

// requireDuckDBReads reads the part at key of the bundle's folder with
// DuckDB, as a user would, and checks its row count against records and
// its first rows' values against the events they are.
func (b *jobsBundle) requireDuckDBReads(t *testing.T, reader, key, format string, records int64, events map[string]audex.Event) {
	t.Helper()
	out, err := exec.Command("node", reader, filepath.Join(b.folder, filepath.FromSlash(key)), format).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = fmt.Errorf("%w: %s", err, exit.Stderr)
	}
	require.NoError(t, err, "DuckDB reading %s", key)
	var got duckdbRead
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	require.Equal(t, records, got.Rows, "%s: DuckDB's row count", key)
	require.NotEmpty(t, got.Sample)
	for _, row := range got.Sample {
		e, ok := events[row.ID]
		require.True(t, ok, "%s: an id DuckDB read, %q, is an event's", key, row.ID)
		require.Equal(t, strconv.FormatInt(e.OccurredAt.UnixMicro(), 10), row.OccurredUS, "%s: occurred_at of %s", key, e.ID)
		require.Equal(t, e.Action, row.Action)
		require.Equal(t, e.Success, row.Success)
		if e.StatusCode == nil {
			require.Nil(t, row.StatusCode)
		} else {
			require.Equal(t, strconv.Itoa(*e.StatusCode), *row.StatusCode)
		}
		require.JSONEq(t, string(e.Metadata), row.Metadata, "%s: metadata of %s", key, e.ID)
	}
}

func TestPartsReadByDuckDB(t *testing.T) {
	t.Parallel()
	reader := testenv.Require(t, "AUDEX_TEST_DUCKDB", "scripts/test.sh installs DuckDB's reader (scripts/duckdb.sh install)")
	b := setupJobs(t)
	// Events with every kind of value: awkward metadata, numbers, booleans,
	// microseconds.
	at := time.Now().Add(-30 * time.Minute).Truncate(time.Microsecond).Add(123456 * time.Nanosecond)
	var more []audex.Event
	for i := range 12 {
		ok := i%3 != 0
		code, ms := 200+i, int64(i*7)
		more = append(more, audex.Event{ID: fmt.Sprintf("rich-%02d", i), OccurredAt: at.Add(time.Duration(i) * time.Microsecond),
			Action: "doc.written", Actor: audex.Actor{ID: "carol"}, Success: &ok, StatusCode: &code, DurationMS: &ms,
			Metadata: []byte(fmt.Sprintf(`{"n":%d,"s":"<a & b>\u2028","nested":{"list":[1,"x",null]}}`, i))})
	}
	b.ingest(t, b.tenant, more)
	// The tenant's events by id, those the workers recorded (an export's
	// audit.export_completed) included.
	eventsByID := func(t *testing.T) map[string]audex.Event {
		rows, err := store.ListEvents(t.Context(), b.pool, b.tenant, audex.Filter{}, audex.OrderAsc, nil, 1000)
		require.NoError(t, err)
		events := map[string]audex.Event{}
		for _, e := range rows {
			events[e.ID] = e
		}
		return events
	}

	exports := newWorker(t, &jobs.ExportWorker{Pool: b.pool, Logger: b.logger, OpenSink: b.open,
		Timing: jobs.ExportTiming{Window: time.Minute, LeaseTTL: 5 * time.Second}})
	for _, c := range []struct{ format, compression string }{
		{"jsonl", "none"}, {"jsonl", "gzip"}, {"csv", "none"}, {"csv", "gzip"}, {"parquet", "none"},
	} {
		t.Run("Export"+c.format+c.compression, func(t *testing.T) {
			e := b.newExport()
			e.Format, e.Compression = c.format, c.compression
			id := b.storeExport(t, e)
			res, err := exports.Work(t.Context(), t, b.tx(t), queue.ExportArgs{ExportID: id}, nil)
			require.NoError(t, err)
			require.Equal(t, river.EventKindJobCompleted, res.EventKind)
			done, err := store.GetExportByID(t.Context(), b.pool, id)
			require.NoError(t, err)
			require.GreaterOrEqual(t, *done.RecordCount, int64(37))
			events := eventsByID(t)
			var total int64
			for _, f := range done.Files {
				b.requireDuckDBReads(t, reader, f.Key, c.format, f.Records, events)
				total += f.Records
			}
			require.Equal(t, *done.RecordCount, total)
		})
	}

	t.Run("StreamParquet", func(t *testing.T) {
		s := b.newStream(time.Now().Add(-2 * time.Hour))
		s.Format = "parquet"
		s = b.storeStream(t, s)
		_, err := b.workStream(t, b.streamWorker(t, b.open), s.ID)
		require.NoError(t, err)
		batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 10)
		require.NoError(t, err)
		require.Len(t, batches, 1)
		require.True(t, strings.HasSuffix(batches[0].Files[0].Key, ".parquet"))
		events := eventsByID(t)
		var total int64
		for _, f := range batches[0].Files {
			b.requireDuckDBReads(t, reader, f.Key, "parquet", f.Records, events)
			total += f.Records
		}
		require.Equal(t, batches[0].RecordCount, total)
		require.GreaterOrEqual(t, total, int64(37))
	})
}
