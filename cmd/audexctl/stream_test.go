package main

import (
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStream(t *testing.T) {
	t.Parallel()
	b := setupWith(t, nil, "AUDEX_STREAM_MIN_INTERVAL=1s")
	b.ingest(t, docs(30))
	ctx := t.Context()

	res := b.run(t, "stream", "create", "--start", time.Now().Add(-time.Hour).Format(time.RFC3339), "--interval", "1s", "--action_prefix", "doc.")
	require.Equal(t, exitOK, res.code, res.stderr)
	id := strings.TrimSpace(res.stdout)
	require.Regexp(t, `^str_\w+$`, id)
	delivered := func(n int64) {
		t.Helper()
		require.Eventually(t, func() bool {
			st, err := b.client.Streams.Get(ctx, id)
			require.NoError(t, err)
			return st.EventsDelivered == n
		}, 30*time.Second, 100*time.Millisecond)
	}
	delivered(30)
	b.ingest(t, docs(35)[30:])
	delivered(35)

	t.Run("StatusListAndBatchesShowIt", func(t *testing.T) {
		res := b.run(t, "stream", "status", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "status         active\n")
		require.Contains(t, res.stdout, "delivered      2 batches, 35 events\n")
		res = b.run(t, "stream", "list")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, id+"  active")
		res = b.run(t, "stream", "batches", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, lines(res.stdout), 3, "a header and two batches: %s", res.stdout)
	})

	t.Run("VerifyChecksTheChainAndNamesTheFirstBrokenLink", func(t *testing.T) {
		res := b.run(t, "stream", "verify", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "stream "+id+": 2 batches, 35 records, chain ok\n")

		batches, err := collect(b.client.Streams.Batches(ctx, id))
		require.NoError(t, err)
		part := filepath.Join(b.srv.Folder, filepath.FromSlash(batches[1].Files[0].Key))
		original, err := os.ReadFile(part)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(part, append(original, '\n'), 0o644))
		res = b.run(t, "stream", "verify", id)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "the chain breaks at batch 2")
		require.NoError(t, os.WriteFile(part, original, 0o644))

		manifest := filepath.Join(b.srv.Folder, filepath.FromSlash(*batches[0].ManifestKey))
		original, err = os.ReadFile(manifest)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(manifest, append(original, ' '), 0o644))
		res = b.run(t, "stream", "verify", "--folder", b.srv.Folder, id)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stdout, "manifest sha256")
		require.Contains(t, res.stderr, "the chain breaks at batch 1")
		require.NoError(t, os.WriteFile(manifest, original, 0o644))
	})

	t.Run("PauseResumeRetimeAndDelete", func(t *testing.T) {
		res := b.run(t, "stream", "pause", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "status         paused\n")
		res = b.run(t, "stream", "resume", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "status         active\n")
		res = b.run(t, "stream", "interval", id, "2m")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "interval       120s\n")
		require.Equal(t, exitUsage, b.run(t, "stream", "interval", id, "1.5s").code)
		res = b.run(t, "stream", "delete", id)
		require.Equal(t, exitOK, res.code, res.stderr)
		res = b.run(t, "stream", "status", id)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "not_found")
	})

	t.Run("CreateRefusesTimeBounds", func(t *testing.T) {
		res := b.run(t, "stream", "create", "--since", "2026-01-01")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "--start")
	})
}

// collect gathers what seq yields, up to its first error.
func collect[T any](seq iter.Seq2[T, error]) ([]T, error) {
	var all []T
	for v, err := range seq {
		if err != nil {
			return all, err
		}
		all = append(all, v)
	}
	return all, nil
}
