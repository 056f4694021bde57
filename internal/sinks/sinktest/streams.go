package sinktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/sinks"
)

// ReadStreamChain reads a stream's delivered JSONL batches back from the
// sink they were written to, as `audexctl stream verify` checks them: seq
// from 1 without gaps; each manifest stored, hashing to the recorded
// manifest_sha256, holding the batch and naming the sha256 of the one
// before; each part with its size, sha256 and record count. It returns
// the events' ids in delivery order and the key of every object the
// batches name.
func ReadStreamChain(t *testing.T, sink sinks.Sink, batches []audex.StreamBatch) (ids, keys []string) {
	t.Helper()
	var previous *string
	for i, batch := range batches {
		require.EqualValues(t, i+1, batch.Seq, "seq has no gaps")
		require.Equal(t, previous, batch.PreviousManifestSHA256, "batch %d links to the one before", batch.Seq)
		require.NotNil(t, batch.ManifestKey)
		data := readObject(t, sink, *batch.ManifestKey)
		require.Equal(t, batch.ManifestSHA256, sha256Hex(data), "manifest %s", *batch.ManifestKey)
		var manifest audex.StreamBatch
		require.NoError(t, json.Unmarshal(data, &manifest))
		manifest.ManifestSHA256 = batch.ManifestSHA256
		require.Equal(t, batch, manifest, "the manifest holds the batch")
		var records int64
		for _, f := range batch.Files {
			part := ReadJSONLPart(t, sink, f)
			ids = append(ids, part...)
			records += int64(len(part))
			keys = append(keys, f.Key)
		}
		require.Equal(t, batch.RecordCount, records)
		keys = append(keys, *batch.ManifestKey)
		sum := batch.ManifestSHA256
		previous = &sum
	}
	return ids, keys
}

// ReadJSONLPart reads an uncompressed JSONL part (of an export or a stream
// batch) from the sink, checks it against its manifest entry f (size,
// sha256, record count) and returns its events' ids in order.
func ReadJSONLPart(t *testing.T, sink sinks.Sink, f audex.ExportFile) []string {
	t.Helper()
	data := readObject(t, sink, f.Key)
	require.Equal(t, f.SHA256, sha256Hex(data), "part %s", f.Key)
	require.EqualValues(t, f.SizeBytes, len(data), "part %s", f.Key)
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e struct {
			ID string `json:"id"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		ids = append(ids, e.ID)
	}
	require.NoError(t, sc.Err())
	require.EqualValues(t, f.Records, len(ids), "part %s", f.Key)
	return ids
}

// readObject returns the object at key.
func readObject(t *testing.T, sink sinks.Sink, key string) []byte {
	t.Helper()
	r, err := sink.Open(t.Context(), key)
	require.NoError(t, err)
	defer r.Close()
	data, err := io.ReadAll(r)
	require.NoError(t, err)
	return data
}
