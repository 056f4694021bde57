package client_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex/client"
)

// TestLog checks what the log service fetches as a user of the SDK would,
// with golang.org/x/mod's note and tlog alone.
func TestLog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, _ := newClient(t, "AUDEX_SEAL_INTERVAL=1s")
	_, err := c.Events.Ingest(ctx, docs(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 5))
	require.NoError(t, err)
	var event client.Event
	for e, err := range c.Events.List(ctx, client.ListParams{}) {
		require.NoError(t, err)
		event = e
		break
	}

	keys, err := c.Log.PublicKeys(ctx)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	verifier, err := note.NewVerifier(keys[0])
	require.NoError(t, err)

	// The newest event is in a checkpoint once a seal after its ingest ran.
	var size int64
	var root tlog.Hash
	var proof client.InclusionProof
	require.Eventually(t, func() bool {
		msg, err := c.Log.Checkpoint(ctx, 0)
		if err != nil {
			return false
		}
		signed, err := note.Open(msg, note.VerifierList(verifier))
		require.NoError(t, err)
		lines := strings.Split(signed.Text, "\n")
		size, err = strconv.ParseInt(lines[1], 10, 64)
		require.NoError(t, err)
		rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
		require.NoError(t, err)
		copy(root[:], rootBytes)
		proof, err = c.Log.Proof(ctx, event.ID, size)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the worker seals within its 1 s interval")
	require.Equal(t, size, proof.TreeSize)
	require.NoError(t, tlog.CheckRecord(proof.Hashes, size, root, proof.LeafIndex, tlog.RecordHash(event.AppendJSON(nil))))

	consistency, err := c.Log.Consistency(ctx, size, size)
	require.NoError(t, err)
	require.Empty(t, consistency.Hashes)
	require.NoError(t, tlog.CheckTree(consistency.Hashes, size, root, size, root))

	_, err = c.Log.Proof(ctx, "no-such-event", size)
	var apiErr *client.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
}
