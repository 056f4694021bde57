package jobs_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/jobs"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/webhook"
)

// newStream returns an active JSONL stream of the tenant to the "local"
// destination, every second, from start (zero: now), not stored yet.
func (b *jobsBundle) newStream(start time.Time) audex.Stream {
	s := audex.Stream{ID: audex.NewID("str"), TenantID: b.tenant, Format: "jsonl", Compression: "none",
		Filters: []byte("{}"), IntervalSeconds: 1, Start: start,
		Destination: audex.ExportDestination{Name: "local", Type: "file", Bucket: b.folder}}
	s.KeyPrefix = s.ID + "/"
	return s
}

// storeStream stores s and returns it as stored.
func (b *jobsBundle) storeStream(t *testing.T, s audex.Stream) audex.Stream {
	t.Helper()
	require.NoError(t, store.CreateStream(t.Context(), b.pool, &s))
	return b.getStream(t, s.ID)
}

func (b *jobsBundle) getStream(t *testing.T, id string) audex.Stream {
	t.Helper()
	s, err := store.GetStreamByID(t.Context(), b.pool, id)
	require.NoError(t, err)
	return s
}

// streamWorker returns River's test worker for a stream worker of b's
// database, opening sinks with open.
func (b *jobsBundle) streamWorker(t *testing.T, open jobs.SinkOpener) *rivertest.Worker[queue.StreamArgs, pgx.Tx] {
	t.Helper()
	return newWorker(t, &jobs.StreamWorker{Pool: b.pool, Logger: b.logger, OpenSink: open, Window: time.Minute, LeaseTTL: 5 * time.Second, PartMaxRecords: 10})
}

// workStream runs the stream's job once and returns how it ended.
func (b *jobsBundle) workStream(t *testing.T, w *rivertest.Worker[queue.StreamArgs, pgx.Tx], id string) (*rivertest.WorkResult, error) {
	t.Helper()
	return w.Work(t.Context(), t, b.tx(t), queue.StreamArgs{StreamID: id}, nil)
}

// waitDue waits until the stream's next batch is due.
func (b *jobsBundle) waitDue(t *testing.T, id string) {
	t.Helper()
	s := b.getStream(t, id)
	time.Sleep(time.Until(s.Watermark.Add(s.Interval())) + 10*time.Millisecond)
}

var batchKey = regexp.MustCompile(`^str_[0-9A-Z]+/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/batch-(\d{6})-(part-\d{5}\.jsonl|manifest\.json)$`)

// requireChain checks the stream's delivered batches against its
// destination (sinktest.ReadStreamChain), each batch's objects under its
// dt= and hour= of through, nothing else stored. It returns the ids of
// the events the batches hold, in order.
func (b *jobsBundle) requireChain(t *testing.T, s audex.Stream) (ids []string, batches []audex.StreamBatch) {
	t.Helper()
	batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 1000)
	require.NoError(t, err)
	ids, keys := sinktest.ReadStreamChain(t, b.sink(t), batches)
	for _, batch := range batches {
		partition := fmt.Sprintf("dt=%s/hour=%02d/", batch.Through.UTC().Format(time.DateOnly), batch.Through.UTC().Hour())
		for _, f := range batch.Files {
			require.Contains(t, f.Key, partition)
			require.Regexp(t, batchKey, f.Key)
		}
	}
	objects, err := b.sink(t).List(t.Context(), s.KeyPrefix)
	require.NoError(t, err)
	stored := []string{}
	for _, o := range objects {
		stored = append(stored, o.Key)
	}
	require.ElementsMatch(t, keys, stored, "nothing else is stored")
	return ids, batches
}

// arrivalOrder returns the ids of the tenant's stored events in arrival
// order, as a stream delivers them.
func (b *jobsBundle) arrivalOrder(t *testing.T) []string {
	t.Helper()
	rows, err := b.pool.Query(t.Context(), `SELECT id FROM events WHERE tenant_id = $1 ORDER BY received_at, id`, b.tenant)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return ids
}

func TestStreamWorker(t *testing.T) {
	t.Parallel()

	t.Run("BatchesHoldEveryEventOnceInArrivalOrderLateOnesIncluded", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		b.ingest(t, "another_"+b.tenant, b.events) // the same ids in another tenant
		s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		w := b.streamWorker(t, b.open)

		// The backfill: the 25 events received since start, in parts of 10.
		res, err := b.workStream(t, w, s.ID)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind, "the run ends when no batch is due")
		ids, batches := b.requireChain(t, s)
		require.Len(t, batches, 1)
		require.Len(t, batches[0].Files, 3)
		require.Equal(t, b.arrivalOrder(t), ids)

		// An event that occurred two days ago but arrives now, and two
		// more: the next batch, never skipped.
		late := []audex.Event{
			{ID: "late", OccurredAt: time.Now().Add(-48 * time.Hour).Truncate(time.Second), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")},
			{ID: "new-1", OccurredAt: time.Now().Truncate(time.Second), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")},
		}
		b.ingest(t, b.tenant, late)
		b.ingest(t, b.tenant, []audex.Event{{ID: "new-2", OccurredAt: time.Now(), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}})
		b.waitDue(t, s.ID)
		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		ids, batches = b.requireChain(t, s)
		require.Len(t, batches, 2)
		require.Equal(t, []string{"late", "new-1", "new-2"}, ids[25:])
		require.Equal(t, b.arrivalOrder(t), ids, "every event once")
		require.Equal(t, batches[0].Through, batches[1].After)

		// A window without events writes no batch; the watermark moves.
		b.waitDue(t, s.ID)
		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		_, batches = b.requireChain(t, s)
		require.Len(t, batches, 2)
		got := b.getStream(t, s.ID)
		require.True(t, got.Watermark.After(batches[1].Through))
		require.EqualValues(t, 2, got.BatchesDelivered)
		require.EqualValues(t, 28, got.EventsDelivered)
		require.Nil(t, got.Error)
	})

	t.Run("AStreamDeliversOnlyItsFiltersEventsFromItsStart", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t) // 25 events received before the stream starts
		s := b.newStream(time.Time{})
		s.Filters = []byte(`{"actor_id":"bob"}`)
		s.Filter.ActorID = ptr("bob")
		s = b.storeStream(t, s)
		b.ingest(t, b.tenant, []audex.Event{
			{ID: "bob-1", OccurredAt: time.Now(), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")},
			{ID: "carol-1", OccurredAt: time.Now(), Action: "doc.read", Actor: audex.Actor{ID: "carol"}, Metadata: []byte("{}")},
		})
		b.waitDue(t, s.ID)
		_, err := b.workStream(t, b.streamWorker(t, b.open), s.ID)
		require.NoError(t, err)
		ids, _ := b.requireChain(t, s)
		require.Equal(t, []string{"bob-1"}, ids)
	})

	t.Run("ARetriedBatchWritesTheSameEventsUnderTheSameKeys", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		// An attempt fixed the batch's through and died after writing a
		// part that this attempt will not write (an event of the batch
		// was deleted since); then more events arrived.
		through, err := store.PendStreamBatch(t.Context(), b.pool, s.ID, time.Now())
		require.NoError(t, err)
		base := fmt.Sprintf("%sdt=%s/hour=%02d/batch-000001-", s.KeyPrefix, through.UTC().Format(time.DateOnly), through.UTC().Hour())
		_, err = b.sink(t).Put(t.Context(), base+"part-00004.jsonl", strings.NewReader("{\"id\":\"gone\"}\n"))
		require.NoError(t, err)
		b.ingest(t, b.tenant, []audex.Event{{ID: "after", OccurredAt: time.Now(), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}})

		w := b.streamWorker(t, b.open)
		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		ids, batches := b.requireChain(t, s) // the stale part is gone
		require.Equal(t, through, batches[0].Through, "the pending through is kept")
		require.Len(t, ids, 25, "the event received after it waits for the next batch")

		b.waitDue(t, s.ID)
		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		ids, _ = b.requireChain(t, s)
		require.Equal(t, b.arrivalOrder(t), ids)
	})

	t.Run("ADestinationDownMakesTheStreamLagAndCatchUp", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		var down atomic.Bool
		down.Store(true)
		open := func(ctx context.Context, name string) (sinks.Sink, error) {
			sink, err := b.open(ctx, name)
			return downSink{sink, &down}, err
		}
		w := b.streamWorker(t, open)
		_, err := b.workStream(t, w, s.ID)
		require.NoError(t, err)
		got := b.getStream(t, s.ID)
		require.Equal(t, audex.StreamActive, got.Status)
		require.NotNil(t, got.Error)
		require.Equal(t, "delivery_retrying", got.Error.Code)
		require.Equal(t, 1, got.Failures)
		claimed, err := store.ClaimDueStreams(t.Context(), b.pool, time.Second, 10)
		require.NoError(t, err)
		require.NotContains(t, claimed, s.ID, "not before its retry time")
		time.Sleep(2100 * time.Millisecond)
		claimed, err = store.ClaimDueStreams(t.Context(), b.pool, time.Second, 10)
		require.NoError(t, err)
		require.Contains(t, claimed, s.ID, "retried after 2 s")

		down.Store(false)
		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		ids, _ := b.requireChain(t, s)
		require.Equal(t, b.arrivalOrder(t), ids)
		got = b.getStream(t, s.ID)
		require.Nil(t, got.Error, "a delivery clears the error")
		require.Zero(t, got.Failures)
	})

	t.Run("ADestinationNoLongerConfiguredFailsTheStream", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		s := b.newStream(time.Now().Add(-2 * time.Hour))
		s.Destination.Name = "gone"
		s = b.storeStream(t, s)
		res, err := b.workStream(t, b.streamWorker(t, b.open), s.ID)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind, "the job ends")
		got := b.getStream(t, s.ID)
		require.Equal(t, audex.StreamFailed, got.Status)
		require.Equal(t, "destination_not_configured", got.Error.Code)
		var n int
		require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE tenant_id = $1 AND action = 'audit.stream_failed' AND target_id = $2`, b.tenant, s.ID).Scan(&n))
		require.Equal(t, 1, n, "audit.stream_failed is recorded")
	})

	t.Run("APurgeWaitsUntilActiveStreamsDeliveredWhatItDeletes", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		p := audex.Purge{TenantID: b.tenant, Before: time.Now()}
		require.NoError(t, store.CreatePurge(t.Context(), b.pool, &p))
		// A late event arrives after the purge was asked for.
		b.ingest(t, b.tenant, []audex.Event{{ID: "late", OccurredAt: time.Now().Add(-time.Hour), Action: "doc.read", Actor: audex.Actor{ID: "bob"}, Metadata: []byte("{}")}})
		purges := newWorker(t, &jobs.PurgeWorker{Pool: b.pool, Logger: b.logger, Window: time.Minute})

		res, err := purges.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobSnoozed, res.EventKind, "the stream has not delivered the events")
		require.Equal(t, 26, len(b.arrivalOrder(t)), "nothing is deleted")

		_, err = b.workStream(t, b.streamWorker(t, b.open), s.ID)
		require.NoError(t, err)
		res, err = purges.Work(t.Context(), t, b.tx(t), queue.PurgeArgs{PurgeID: p.ID}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		require.Equal(t, []string{"late"}, b.eventIDs(t, b.tenant, "doc.read"), "the event received after the purge was asked for stays")
		ids, _ := b.requireChain(t, s)
		require.Len(t, ids, 26, "the stream delivered every event before the purge deleted it")
	})

	t.Run("APausedStreamsJobEnds", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		paused := audex.StreamPaused
		_, err := store.UpdateStream(t.Context(), b.pool, b.tenant, s.ID, store.StreamChange{Status: &paused}, audex.SystemActor())
		require.NoError(t, err)
		res, err := b.workStream(t, b.streamWorker(t, b.open), s.ID)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		_, batches := b.requireChain(t, s)
		require.Empty(t, batches)
		claimed, err := store.ClaimDueStreams(t.Context(), b.pool, time.Second, 10)
		require.NoError(t, err)
		require.NotContains(t, claimed, s.ID)
	})

	t.Run("TheSchedulerStartsDueStreamsAndADeadRunsStreamOnceItsLeaseExpires", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		due := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
		notDue := b.newStream(time.Time{})
		notDue.IntervalSeconds = 3600
		notDue = b.storeStream(t, notDue)
		claimed, err := store.ClaimDueStreams(t.Context(), b.pool, 300*time.Millisecond, 10)
		require.NoError(t, err)
		require.Contains(t, claimed, due.ID)
		require.NotContains(t, claimed, notDue.ID)
		claimed, err = store.ClaimDueStreams(t.Context(), b.pool, 300*time.Millisecond, 10)
		require.NoError(t, err)
		require.NotContains(t, claimed, due.ID, "claimed for a job already")

		// A run takes the claim over, then dies holding the lease.
		_, err = store.AcquireStreamLease(t.Context(), b.pool, due.ID, "dead-run", 300*time.Millisecond)
		require.NoError(t, err)
		_, err = store.AcquireStreamLease(t.Context(), b.pool, due.ID, "another-run", time.Second)
		require.ErrorIs(t, err, store.ErrLeaseLost, "one run at a time")
		time.Sleep(400 * time.Millisecond)
		claimed, err = store.ClaimDueStreams(t.Context(), b.pool, time.Second, 10)
		require.NoError(t, err)
		require.Contains(t, claimed, due.ID, "its lease expired")

		// The scheduler's job delivers it.
		res, err := newWorker(t, &jobs.StreamSchedulerWorker{Pool: b.pool, LeaseTTL: time.Second}).
			Work(t.Context(), t, b.tx(t), queue.StreamSchedulerArgs{}, nil)
		require.NoError(t, err)
		require.Equal(t, river.EventKindJobCompleted, res.EventKind)
		_, err = b.workStream(t, b.streamWorker(t, b.open), due.ID)
		require.NoError(t, err)
		ids, _ := b.requireChain(t, due)
		require.Equal(t, b.arrivalOrder(t), ids)
		require.Nil(t, b.getStream(t, due.ID).PendingThrough)
	})
}

// TestAStreamWhoseJobIsCancelledDeliversEveryEventOnce is an operator
// cancelling a stream's running job in River's UI: the run stops mid-batch
// and gives its lease back, and the scheduler gives the stream a new job,
// which delivers the batch: every event once, nothing else stored.
func TestAStreamWhoseJobIsCancelledDeliversEveryEventOnce(t *testing.T) {
	t.Parallel()
	b := setupJobs(t)
	s := b.storeStream(t, b.newStream(time.Now().Add(-2*time.Hour)))
	held := heldSink{began: make(chan struct{}), uploads: new(atomic.Int32)}
	b.startWith(t, jobs.ExportTiming{Window: 2 * time.Second, LeaseTTL: 2 * time.Second}, func(ctx context.Context, name string) (sinks.Sink, error) {
		sink, err := b.open(ctx, name)
		h := held
		h.Sink = sink
		return h, err
	})
	select {
	case <-held.began:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream's job never began an upload")
	}
	var jobID int64
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT id FROM river_job WHERE kind = $1 AND state = 'running'`,
		queue.StreamArgs{}.Kind()).Scan(&jobID))
	_, err := b.inserts.JobCancel(t.Context(), jobID)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		job, err := b.inserts.JobGet(t.Context(), jobID)
		require.NoError(t, err)
		return job.State == rivertype.JobStateCancelled
	}, 30*time.Second, 50*time.Millisecond, "the job ends cancelled")
	require.Eventually(t, func() bool {
		return b.getStream(t, s.ID).Watermark.After(s.Watermark)
	}, 30*time.Second, 50*time.Millisecond, "a new job delivers the stream")
	ids, _ := b.requireChain(t, s)
	require.Equal(t, b.arrivalOrder(t), ids)
	var laterJobs int
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = $1 AND id > $2`,
		queue.StreamArgs{}.Kind(), jobID).Scan(&laterJobs))
	require.Positive(t, laterJobs, "delivered by another job")
}

// heldSink is a sink whose first upload, once begun (began is closed),
// waits until its context ends: a run stopped mid-batch.
type heldSink struct {
	sinks.Sink
	began   chan struct{}
	uploads *atomic.Int32
}

func (s heldSink) Put(ctx context.Context, key string, r io.Reader) (sinks.Object, error) {
	if s.uploads.Add(1) == 1 {
		close(s.began)
		<-ctx.Done()
		return sinks.Object{}, ctx.Err()
	}
	return s.Sink.Put(ctx, key, r)
}

// hookEndpoint is a real HTTP server on 127.0.0.1 that answers the
// statuses of answers in turn (the last one from then on), and keeps the
// NDJSON lines of every batch it acknowledged, by batch id, after checking
// each request's signature.
type hookEndpoint struct {
	*httptest.Server
	mu      sync.Mutex
	calls   int
	batches map[string][]string // batch id -> the events' ids
	order   []string            // batch ids in the order first acknowledged
}

func newHookEndpoint(t *testing.T, answers ...int) *hookEndpoint {
	t.Helper()
	h := &hookEndpoint{batches: map[string][]string{}}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.calls++
		if r.Header.Get("X-Audex-Signature") != webhook.Sign([]byte("hook-secret"), body) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		status := answers[min(h.calls, len(answers))-1]
		w.WriteHeader(status)
		if status >= 300 {
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return
		}
		sc := bufio.NewScanner(zr)
		var ids []string
		for sc.Scan() {
			var e struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(sc.Bytes(), &e)
			ids = append(ids, e.ID)
		}
		id := r.Header.Get("X-Audex-Batch-Id")
		if _, again := h.batches[id]; !again {
			h.order = append(h.order, id)
		}
		h.batches[id] = ids // a retry of the batch replaces it: the endpoint dedupes by id
	}))
	t.Cleanup(h.Close)
	return h
}

// delivered returns the acknowledged events' ids, batch after batch.
func (h *hookEndpoint) delivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for _, id := range h.order {
		ids = append(ids, h.batches[id]...)
	}
	return ids
}

// openHook is a WebhookOpener of the endpoint as destination "hook".
func (h *hookEndpoint) openHook(context.Context, string) (*webhook.Client, error) {
	env := map[string]string{"HOOK_URL": h.URL + "/audit", "HOOK_SECRET": "hook-secret"}
	return webhook.FromDestination(config.Destination{Name: "hook", Type: "webhook", URLEnv: "HOOK_URL", SecretEnv: "HOOK_SECRET",
		AllowedHosts: []string{h.Listener.Addr().String()}}, func(k string) string { return env[k] })
}

func TestStreamToAWebhook(t *testing.T) {
	t.Parallel()
	hookStream := func(b *jobsBundle) audex.Stream {
		s := b.newStream(time.Now().Add(-2 * time.Hour))
		s.Compression = "gzip"
		s.Destination = audex.ExportDestination{Name: "hook", Type: "webhook"}
		return b.storeStream(t, s)
	}
	worker := func(t *testing.T, b *jobsBundle, h *hookEndpoint) *rivertest.Worker[queue.StreamArgs, pgx.Tx] {
		return newWorker(t, &jobs.StreamWorker{Pool: b.pool, Logger: b.logger, OpenSink: b.open, OpenWebhook: h.openHook,
			Window: time.Minute, LeaseTTL: 5 * time.Second})
	}

	t.Run("AnEndpointThatFailsThenRecoversGetsEveryEventOnce", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		// Three tries of a delivery fail (500, 503, 500), then it is
		// acknowledged: the second run delivers the batch.
		h := newHookEndpoint(t, 500, 503, 500, 200)
		s := hookStream(b)
		w := worker(t, b, h)
		_, err := b.workStream(t, w, s.ID)
		require.NoError(t, err)
		got := b.getStream(t, s.ID)
		require.Equal(t, "delivery_retrying", got.Error.Code)
		require.NotNil(t, got.PendingThrough, "the batch stays pending")

		_, err = b.workStream(t, w, s.ID)
		require.NoError(t, err)
		require.Equal(t, b.arrivalOrder(t), h.delivered())
		batches, err := store.ListStreamBatches(t.Context(), b.pool, s.ID, 0, 10)
		require.NoError(t, err)
		require.Len(t, batches, 1)
		require.Equal(t, s.ID+"-000001", batches[0].Files[0].Key)
		require.EqualValues(t, 25, batches[0].Files[0].Records)
		require.Nil(t, b.getStream(t, s.ID).Error)
	})

	t.Run("AClientErrorFailsTheStream", func(t *testing.T) {
		t.Parallel()
		b := setupJobs(t)
		h := newHookEndpoint(t, 404)
		s := hookStream(b)
		_, err := b.workStream(t, worker(t, b, h), s.ID)
		require.NoError(t, err)
		got := b.getStream(t, s.ID)
		require.Equal(t, audex.StreamFailed, got.Status)
		require.Equal(t, "webhook_rejected", got.Error.Code)
		require.Contains(t, got.Error.Message, "answered 404")
		require.NotContains(t, got.Error.Message, "hook-secret")
	})
}

// downSink is a sink whose uploads fail while down is set, as a store
// that cannot be reached.
type downSink struct {
	sinks.Sink
	down *atomic.Bool
}

func (s downSink) Put(ctx context.Context, key string, r io.Reader) (sinks.Object, error) {
	if s.down.Load() {
		return sinks.Object{}, errors.New("dial tcp 127.0.0.1:9000: connection refused")
	}
	return s.Sink.Put(ctx, key, r)
}

func ptr[T any](v T) *T { return &v }
