package main

import (
	"bytes"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
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

func TestStreamVerifyReadsObjectStores(t *testing.T) {
	t.Parallel()
	cfg, _ := sinktest.NewBucket(t, "s3")
	b := setupWith(t, []config.Destination{{Name: "lake", Type: "s3", Bucket: cfg.Bucket, Region: cfg.Region, Endpoint: cfg.Endpoint,
		AccessKeyIDEnv: cfg.AccessKeyIDEnv, SecretAccessKeyEnv: cfg.SecretAccessKeyEnv}}, "AUDEX_STREAM_MIN_INTERVAL=1s")
	for _, name := range []string{cfg.AccessKeyIDEnv, cfg.SecretAccessKeyEnv} {
		b.env[name] = os.Getenv(name)
	}
	b.ingest(t, docs(30))
	res := b.run(t, "stream", "create", "--start", time.Now().Add(-time.Hour).Format(time.RFC3339), "--interval", "1s",
		"--action_prefix", "doc.", "--destination", "lake", "--format", "parquet")
	require.Equal(t, exitOK, res.code, res.stderr)
	id := strings.TrimSpace(res.stdout)
	require.Eventually(t, func() bool {
		st, err := b.client.Streams.Get(t.Context(), id)
		require.NoError(t, err)
		return st.EventsDelivered == 30
	}, 30*time.Second, 100*time.Millisecond)

	res = b.run(t, "stream", "verify", id)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Contains(t, res.stdout, "stream "+id+": 1 batches, 30 records, chain ok\n")

	batches, err := collect(b.client.Streams.Batches(t.Context(), id))
	require.NoError(t, err)
	key := batches[0].Files[0].Key
	require.True(t, strings.HasSuffix(key, ".parquet"), key)
	admin := sinktest.S3Admin(t)
	obj, err := admin.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
	require.NoError(t, err)
	data, err := io.ReadAll(obj.Body)
	require.NoError(t, err)
	obj.Body.Close()
	data[len(data)/2] ^= 1
	_, err = admin.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	require.NoError(t, err)

	res = b.run(t, "stream", "verify", id)
	require.Equal(t, exitFailure, res.code)
	require.Contains(t, res.stdout, key+": sha256 ")
	require.Contains(t, res.stderr, "the chain breaks at batch 1")
}
