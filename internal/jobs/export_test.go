package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// exportWorker returns River's test worker for an export worker of b's
// database with timing, writing through b.open.
func (b *jobsBundle) exportWorker(t *testing.T, timing jobs.ExportTiming) *rivertest.Worker[queue.ExportArgs, pgx.Tx] {
	t.Helper()
	return newWorker(t, &jobs.ExportWorker{Pool: b.pool, Logger: b.logger, OpenSink: b.open, Timing: timing})
}

// newSealer returns a log sealer of the test's signing key, and the key.
func newSealer(t *testing.T) (*jobs.LogSealer, *integrity.Keys) {
	t.Helper()
	keys, err := integrity.ParseKeys(storetest.LogKey(t))
	require.NoError(t, err)
	return &jobs.LogSealer{Name: "audex", Keys: keys}, keys
}

// partAnAttempt stores an export that River's test worker works one part
// an attempt (each attempt's window is used up by its first part), and
// returns it with what works its next attempt after prev (nil: the first).
func (b *jobsBundle) partAnAttempt(t *testing.T) (audex.Export, func(prev *rivertest.WorkResult) (*rivertest.WorkResult, error)) {
	t.Helper()
	e := b.newExport()
	b.storeExport(t, e)
	w := b.exportWorker(t, jobs.ExportTiming{Window: time.Nanosecond, LeaseTTL: 5 * time.Second})
	tx := b.tx(t)
	return e, func(prev *rivertest.WorkResult) (*rivertest.WorkResult, error) {
		if prev == nil {
			return w.Work(t.Context(), t, tx, queue.ExportArgs{ExportID: e.ID}, nil)
		}
		return w.WorkJob(t.Context(), t, tx, prev.Job)
	}
}

// objects returns the keys stored under the export's prefix.
func (b *jobsBundle) objects(t *testing.T, e audex.Export) []string {
	t.Helper()
	list, err := b.sink(t).List(t.Context(), e.KeyPrefix)
	require.NoError(t, err)
	keys := []string{}
	for _, o := range list {
		keys = append(keys, o.Key)
	}
	return keys
}

// read returns the object at key.
func (b *jobsBundle) read(t *testing.T, key string) []byte {
	t.Helper()
	r, err := b.sink(t).Open(t.Context(), key)
	require.NoError(t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	return data
}

// requireExported checks a completed export against its destination: the
// manifest lists the recorded parts, each part has the size, sha256 and
// record count the manifest gives, nothing else is stored, and the parts'
// lines are the events of want (ids), in order. It returns how many
// records each part holds.
func (b *jobsBundle) requireExported(t *testing.T, id string, want []string) []int64 {
	t.Helper()
	e, err := store.GetExportByID(t.Context(), b.pool, id)
	require.NoError(t, err)
	require.Equal(t, audex.ExportCompleted, e.Status)
	require.NotNil(t, e.ManifestKey)
	var manifest audex.Export
	require.NoError(t, json.Unmarshal(b.read(t, *e.ManifestKey), &manifest))
	require.Equal(t, audex.ExportCompleted, manifest.Status)
	require.Equal(t, e.Files, manifest.Files, "the manifest lists the recorded parts")
	require.EqualValues(t, len(want), *manifest.RecordCount)

	keys := []string{}
	var ids []string
	var records []int64
	for _, f := range manifest.Files {
		part := sinktest.ReadJSONLPart(t, b.sink(t), f)
		ids = append(ids, part...)
		keys = append(keys, f.Key)
		records = append(records, int64(len(part)))
	}
	require.Equal(t, want, ids, "the parts hold the events once each, in order")
	require.ElementsMatch(t, append(keys, *e.ManifestKey), b.objects(t, e), "nothing else is stored")
	return records
}

func TestExportWorker(t *testing.T) {
	t.Parallel()
	timing := jobs.ExportTiming{Window: time.Minute, LeaseTTL: 5 * time.Second}

	t.Run("AJSONLExportWritesTheEventsInOrderInThePartsOfItsManifest", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		b.ingest(t, "another_"+b.tenant, b.events) // the same ids in another tenant
		id := b.storeExport(t, b.newExport())

		res, err := b.exportWorker(t, timing).Work(t.Context(), t, b.tx(t), queue.ExportArgs{ExportID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, []int64{10, 10, 5}, b.requireExported(t, id, exportOrder(b.events)))
		e, err := store.GetExportByID(t.Context(), b.pool, id)
		require.NoError(t, err)
		require.EqualValues(t, 25, e.Progress.RecordsExported)
		require.Equal(t, 3, e.Progress.PartsWritten)
		require.Equal(t, 100, e.Progress.Percent)
	})

	t.Run("AnExportOverSeveralAttemptsResumesFromItsCheckpoint", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		e, next := b.partAnAttempt(t)
		id := e.ID
		want := exportOrder(b.events)

		res, err := next(nil)
		kinds := []river.EventKind{res.EventKind}
		for attempt := 1; err == nil && res.EventKind == river.EventKindJobSnoozed && attempt < 10; attempt++ {
			got, getErr := store.GetExportByID(t.Context(), b.pool, id)
			require.NoError(t, getErr)
			require.Equal(t, audex.ExportRunning, got.Status)
			require.EqualValues(t, 10*attempt, got.Progress.RecordsExported, "one part an attempt")
			require.Equal(t, &audex.Position{OccurredAt: b.occurredAt(want[10*attempt-1]), ID: want[10*attempt-1]}, got.Checkpoint,
				"the checkpoint is the last event exported")
			if attempt == 1 {
				// An attempt that died after uploading part 2 but before
				// recording it left an object at its key.
				_, putErr := b.sink(t).Put(t.Context(), e.KeyPrefix+"part-00002.jsonl", strings.NewReader("{\"id\":\"stale\"}\n"))
				require.NoError(t, putErr)
			}
			res, err = next(res)
			kinds = append(kinds, res.EventKind)
		}
		require.NoError(t, err)
		require.Equal(t, []river.EventKind{river.EventKindJobSnoozed, river.EventKindJobSnoozed, river.EventKindJobCompleted}, kinds)
		require.Equal(t, []int64{10, 10, 5}, b.requireExported(t, id, want), "no event lost or written twice")
	})

	t.Run("ACancelledExportStopsAndItsPartsAreDeleted", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		e := b.newExport()
		id := b.storeExport(t, e)
		// The upload of part 2 stalls until the attempt stops.
		stall := &stalledSink{key: e.KeyPrefix + "part-00002.jsonl", reached: make(chan struct{})}
		open := func(ctx context.Context, name string) (sinks.Sink, error) {
			sink, err := b.open(ctx, name)
			stall.Sink = sink
			return stall, err
		}
		w := newWorker(t, &jobs.ExportWorker{Pool: b.pool, Logger: b.logger, OpenSink: open,
			Timing: jobs.ExportTiming{Window: time.Minute, LeaseTTL: 1500 * time.Millisecond}})
		type outcome struct {
			res *rivertest.WorkResult
			err error
		}
		done := make(chan outcome, 1)
		tx := b.tx(t)
		go func() {
			res, err := w.Work(context.WithoutCancel(t.Context()), t, tx, queue.ExportArgs{ExportID: id}, nil)
			done <- outcome{res, err}
		}()
		select {
		case <-stall.reached:
		case got := <-done:
			t.Fatalf("the attempt ended before part 2: %v %v", got.res.EventKind, got.err)
		}
		require.Equal(t, []string{e.KeyPrefix + "part-00001.jsonl"}, b.objects(t, e))
		require.NoError(t, store.CancelExport(t.Context(), b.pool, b.tenant, id, audex.SystemActor()))

		var got outcome
		select {
		case got = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the attempt goes on after its export was cancelled")
		}
		require.NoError(t, got.err)
		require.Equal(t, river.EventKindJobCompleted, got.res.EventKind, "nothing is left to do")
		require.Empty(t, b.objects(t, e), "its part is deleted")
		now, err := store.GetExportByID(t.Context(), b.pool, id)
		require.NoError(t, err)
		require.Equal(t, audex.ExportCancelled, now.Status)
		require.Equal(t, 1, now.Progress.PartsWritten)
		require.Nil(t, now.ManifestKey)
	})

	t.Run("ACancelledExportIsNotResumedAndItsPartsAreDeleted", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		e, next := b.partAnAttempt(t)
		id := e.ID
		res, err := next(nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind)
		require.Len(t, b.objects(t, e), 1)

		require.NoError(t, store.CancelExport(t.Context(), b.pool, b.tenant, id, audex.SystemActor()))
		res, err = next(res)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Empty(t, b.objects(t, e))
		now, err := store.GetExportByID(t.Context(), b.pool, id)
		require.NoError(t, err)
		require.Equal(t, audex.ExportCancelled, now.Status)
		require.Equal(t, 1, now.Progress.PartsWritten, "no part written after the cancel")
	})

	t.Run("AnExportWhoseDestinationIsGoneFailsWithoutRetrying", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		e := b.newExport()
		e.Destination.Name = "retired"
		id := b.storeExport(t, e)
		res, err := b.exportWorker(t, timing).Work(t.Context(), t, b.tx(t), queue.ExportArgs{ExportID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCancelled, res.EventKind, "not retried")
		require.Len(t, res.Job.Errors, 1)
		require.Contains(t, res.Job.Errors[0].Error, jobs.ErrDestinationGone.Error())

		now, err := store.GetExportByID(t.Context(), b.pool, id)
		require.NoError(t, err)
		require.Equal(t, audex.ExportFailed, now.Status)
		require.NotNil(t, now.Error)
		require.Equal(t, "destination_not_configured", now.Error.Code)
		require.Contains(t, now.Error.Message, "destination retired is no longer configured")
		require.Zero(t, now.Progress.PartsWritten)
	})
}

// occurredAt returns when the bundle's event id occurred, as stored.
func (b *jobsBundle) occurredAt(id string) time.Time {
	for _, e := range b.events {
		if e.ID == id {
			return e.OccurredAt.UTC()
		}
	}
	return time.Time{}
}

// stalledSink is a sink whose upload of key waits until its context ends,
// as one to a destination that stopped answering would, storing nothing.
type stalledSink struct {
	sinks.Sink
	key     string
	reached chan struct{} // closed when the upload of key starts
}

func (s *stalledSink) Put(ctx context.Context, key string, r io.Reader) (sinks.Object, error) {
	if key != s.key {
		return s.Sink.Put(ctx, key, r)
	}
	close(s.reached)
	<-ctx.Done()
	return sinks.Object{}, ctx.Err()
}

// TestExportManifestBesideAPurge checks that an export whose leaves
// range around the leaves of events that a running purge deletes (older
// events received between its records) waits for the purge to record
// its deletions before it writes its manifest, and that the manifest
// verifies: those leaves are the purge's, not records removed.
func TestExportManifestBesideAPurge(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	ctx := t.Context()
	sealer, keys := newSealer(t)
	old, late := make([]audex.Event, 10), make([]audex.Event, 5)
	for i := range old {
		old[i] = audex.Event{ID: fmt.Sprintf("old-%02d", i), OccurredAt: time.Now().Add(-30 * 24 * time.Hour), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}
	}
	for i := range late {
		late[i] = audex.Event{ID: fmt.Sprintf("late-%02d", i), OccurredAt: time.Now().Add(-30 * time.Minute), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}
	}
	b.ingest(t, b.tenant, old)
	b.ingest(t, b.tenant, late)
	require.NoError(t, sealer.SealTenant(ctx, b.pool, b.tenant))

	// The purge has deleted 4 of the old events and runs on.
	p := audex.Purge{TenantID: b.tenant, Before: time.Now().Add(-10 * 24 * time.Hour)}
	require.NoError(t, store.CreatePurge(ctx, b.pool, &p))
	p, blocked, err := store.StartPurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	require.False(t, blocked, "the export covers none of the purge's range")
	_, next, err := store.PurgeBatch(ctx, b.pool, p, nil, 4, 0)
	require.NoError(t, err)

	id := b.storeExport(t, b.newExport())
	w := newWorker(t, &jobs.ExportWorker{Pool: b.pool, Logger: b.logger, OpenSink: b.open, Sealer: sealer,
		Timing: jobs.ExportTiming{Window: time.Minute, LeaseTTL: 5 * time.Second}})
	type result struct {
		res *rivertest.WorkResult
		err error
	}
	worked := make(chan result, 1)
	tx := b.tx(t)
	go func() {
		res, err := w.Work(ctx, t, tx, queue.ExportArgs{ExportID: id}, nil)
		worked <- result{res, err}
	}()
	require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), `"msg":"manifest_waits_for_purge"`) },
		20*time.Second, 20*time.Millisecond)
	select {
	case r := <-worked:
		t.Fatalf("the export ended while the purge ran: %+v", r)
	case <-time.After(2 * time.Second):
	}
	e, err := store.GetExportByID(ctx, b.pool, id)
	require.NoError(t, err)
	require.Equal(t, audex.ExportRunning, e.Status)

	_, next, err = store.PurgeBatch(ctx, b.pool, p, next, 100, 0)
	require.NoError(t, err)
	require.Nil(t, next)
	_, err = store.CompletePurge(ctx, b.pool, p.ID)
	require.NoError(t, err)
	r := <-worked
	require.NoError(t, r.err)
	require.Equal(t, river.EventKindJobCompleted, r.res.EventKind)

	e, err = store.GetExportByID(ctx, b.pool, id)
	require.NoError(t, err)
	var ids []string
	for _, f := range e.Files {
		ids = append(ids, sinktest.ReadJSONLPart(t, b.sink(t), f)...)
	}
	require.Equal(t, exportOrder(append(b.events, late...)), ids)
	v := sinktest.CheckSignedManifest(t, b.sink(t), *e.ManifestKey, keys.VerifierKeys())
	require.Empty(t, v.Problems)
	require.EqualValues(t, 30, v.Matched)
	require.Len(t, v.Deleted, 1)
	for by, n := range v.Deleted {
		require.Contains(t, by, "audit.purge_completed")
		require.EqualValues(t, 10, n)
	}
	// Its leaves came from the log alone, in the try after the purge too
	// (a tally emptied for that try).
	require.NotContains(t, b.logs.String(), `"msg":"export_log_from_records"`)
}

// TestExportLeavesFromTheLog checks that an export selected by time alone
// takes its manifest's leaves from the log alone when the log's leaves of
// its times are its records, and works them out from the records when
// they are not (an event deleted behind audex's back), so that its
// manifest names that event's leaf missing.
func TestExportLeavesFromTheLog(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	ctx := t.Context()
	sealer, keys := newSealer(t)
	require.NoError(t, sealer.SealTenant(ctx, b.pool, b.tenant))
	w := newWorker(t, &jobs.ExportWorker{Pool: b.pool, Logger: b.logger, OpenSink: b.open, Sealer: sealer,
		Timing: jobs.ExportTiming{Window: time.Minute, LeaseTTL: 5 * time.Second}})
	export := func(t *testing.T) integrity.Verdict {
		t.Helper()
		id := b.storeExport(t, b.newExport())
		res, err := w.Work(ctx, t, b.tx(t), queue.ExportArgs{ExportID: id}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		e, err := store.GetExportByID(ctx, b.pool, id)
		require.NoError(t, err)
		return sinktest.CheckSignedManifest(t, b.sink(t), *e.ManifestKey, keys.VerifierKeys())
	}

	t.Run("the log's leaves are the records'", func(t *testing.T) {
		v := export(t)
		require.Empty(t, v.Problems)
		require.EqualValues(t, 25, v.Matched)
		require.NotContains(t, b.logs.String(), `"msg":"export_log_from_records"`)
	})
	t.Run("an event deleted behind audex's back", func(t *testing.T) {
		for _, table := range []string{"events", "event_ids"} {
			_, err := b.pool.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND id = 'ev-07'`, b.tenant)
			require.NoError(t, err)
		}
		v := export(t)
		require.Equal(t, v.Records, v.Matched, "every record is a leaf")
		require.Len(t, v.Problems, 1)
		require.Regexp(t, `\(event "ev-07"\) is MISSING`, v.Problems[0])
		require.Contains(t, b.logs.String(), `"msg":"export_log_from_records"`)
	})
}
