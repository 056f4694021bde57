package client_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
)

func TestStreams(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newClient(t, "AUDEX_STREAM_MIN_INTERVAL=1s")
	events := docs(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 40)
	_, err := c.Events.Ingest(ctx, events)
	require.NoError(t, err)

	st, err := c.Streams.Create(ctx, client.StreamRequest{Format: "jsonl", Compression: "gzip", Destination: "local",
		Filters: client.Filters{Actions: []string{"doc.1"}}, Interval: time.Second, Start: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	require.Equal(t, audex.StreamActive, st.Status)
	require.Equal(t, 1, st.IntervalSeconds)

	require.Eventually(t, func() bool {
		st, err = c.Streams.Get(ctx, st.ID)
		require.NoError(t, err)
		return st.EventsDelivered > 0
	}, 30*time.Second, 100*time.Millisecond)
	require.EqualValues(t, 13, st.EventsDelivered, "the 13 doc.1 events of 40")
	batches := collect(t, c.Streams.Batches(ctx, st.ID))
	require.Len(t, batches, 1)
	require.EqualValues(t, 13, batches[0].RecordCount)
	require.Nil(t, batches[0].PreviousManifestSHA256)

	paused, minute := audex.StreamPaused, time.Minute
	st, err = c.Streams.Update(ctx, st.ID, client.StreamChange{Status: &paused, Interval: &minute})
	require.NoError(t, err)
	require.Equal(t, audex.StreamPaused, st.Status)
	require.Equal(t, 60, st.IntervalSeconds)
	listed := collect(t, c.Streams.List(ctx))
	require.Len(t, listed, 1)
	require.Equal(t, st.ID, listed[0].ID)

	require.NoError(t, c.Streams.Delete(ctx, st.ID))
	_, err = c.Streams.Get(ctx, st.ID)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "not_found", apiErr.Code)
	require.Empty(t, collect(t, c.Streams.List(ctx)))
}
