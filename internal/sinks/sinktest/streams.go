package sinktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
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
		if manifest.Log != nil {
			// What the integrity log says is in the manifest alone (see
			// CheckBatchLogs), with its leaves and signature beside it.
			keys = append(keys, manifest.Log.Leaves.Key, *batch.ManifestKey+".sig")
			manifest.Log = nil
		}
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

// CheckBatchLogs checks the signed manifests of a stream's uncompressed
// JSONL batches against the integrity log (CheckSignedManifest): no
// problem, and every record a leaf.
func CheckBatchLogs(t *testing.T, sink sinks.Sink, batches []audex.StreamBatch, verifierKeys []string) {
	t.Helper()
	for _, batch := range batches {
		v := CheckSignedManifest(t, sink, *batch.ManifestKey, verifierKeys)
		require.Empty(t, v.Problems, "batch %d", batch.Seq)
		require.Equal(t, batch.RecordCount, v.Matched, "batch %d: every record a leaf", batch.Seq)
	}
}

// CheckSignedManifest checks the manifest at key (an export's or a stream
// batch's, of uncompressed JSONL parts) as `audexctl verify manifest`
// does: its signature with the verifier keys, then each record against
// what it says of the integrity log. It returns the verdict.
func CheckSignedManifest(t *testing.T, sink sinks.Sink, key string, verifierKeys []string) integrity.Verdict {
	t.Helper()
	data := readObject(t, sink, key)
	_, err := integrity.OpenManifestSignature(readObject(t, sink, key+".sig"), data, verifierKeys)
	require.NoError(t, err, key)
	var manifest struct {
		Files []audex.ExportFile `json:"files"`
		Log   *audex.ManifestLog `json:"log"`
	}
	require.NoError(t, json.Unmarshal(data, &manifest))
	require.NotNil(t, manifest.Log, "%s says what the log holds", key)
	check, err := integrity.NewLogCheck(*manifest.Log, bytes.NewReader(readObject(t, sink, manifest.Log.Leaves.Key)), verifierKeys)
	require.NoError(t, err, key)
	for _, f := range manifest.Files {
		sc := bufio.NewScanner(bytes.NewReader(readObject(t, sink, f.Key)))
		for n := 1; sc.Scan(); n++ {
			check.Record(fmt.Sprintf("%s line %d", f.Key, n), sc.Bytes())
		}
		require.NoError(t, sc.Err())
	}
	return check.Verdict()
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
