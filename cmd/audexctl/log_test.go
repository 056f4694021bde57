package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestLog(t *testing.T) {
	t.Parallel()
	// The server's signing key is the test's, so that it can forge what a
	// thief of the key could, and see what the checks still catch.
	skey := storetest.LogKey(t)
	keys, err := integrity.ParseKeys(skey)
	require.NoError(t, err)
	b := setupWith(t, nil, "AUDEX_SEAL_INTERVAL=1s", "AUDEX_LOG_KEY="+skey)
	b.ingest(t, docs(8))
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	// checkpointOf waits for a checkpoint of at least n leaves and saves it.
	checkpointOf := func(name string, n int64) (string, integrity.Checkpoint) {
		t.Helper()
		var res result
		var c integrity.Checkpoint
		require.Eventually(t, func() bool {
			res = b.run(t, "log", "checkpoint", "--keys", filepath.Join(dir, "keys"))
			if res.code != exitOK {
				return false
			}
			c, err = integrity.ParseCheckpoint(res.stdout)
			require.NoError(t, err)
			return c.Size >= n
		}, 30*time.Second, 200*time.Millisecond, "the worker seals: %+v", res)
		return write(name, res.stdout), c
	}

	res := b.run(t, "log", "public-key")
	require.Equal(t, exitOK, res.code, res.stderr)
	require.Equal(t, strings.Join(keys.VerifierKeys(), "\n")+"\n", res.stdout)
	keysFile := write("keys", res.stdout)
	oldFile, old := checkpointOf("old", 8)

	t.Run("ProveChecksServedEventsAgainstASavedCheckpoint", func(t *testing.T) {
		res := b.run(t, "log", "prove", "e00000", "e00007", "--keys", keysFile, "--checkpoint", oldFile)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, lines(res.stdout), 2)
		require.Regexp(t, `^e00000: ok, leaf \d+ of the tree of `+strconv.FormatInt(old.Size, 10), res.stdout)
	})

	t.Run("AnEventChangedInTheDatabaseIsNamed", func(t *testing.T) {
		_, err := b.srv.Pool.Exec(t.Context(), `UPDATE events SET action = 'doc.forged' WHERE tenant_id = $1 AND id = 'e00003'`, b.srv.Tenant)
		require.NoError(t, err)
		res := b.run(t, "log", "prove", "e00002", "e00003", "--keys", keysFile, "--checkpoint", oldFile)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stdout, "e00002: ok")
		require.Contains(t, res.stdout, "e00003: CHANGED")
		require.Contains(t, res.stderr, "1 of 2 events do not check")
	})

	t.Run("TheLogOnlyGrows", func(t *testing.T) {
		b.ingest(t, docs(12)[8:])
		newFile, cur := checkpointOf("new", old.Size+4)
		res := b.run(t, "log", "consistency", oldFile, "--keys", keysFile)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "a prefix of the tree of ")
		res = b.run(t, "log", "consistency", oldFile, newFile, "--keys", keysFile)
		require.Equal(t, exitOK, res.code, res.stderr)

		// A checkpoint of the same size over another tree, signed with the
		// stolen key: the server's proofs cannot tie it to the log.
		forged := integrity.Checkpoint{Origin: cur.Origin, Size: cur.Size, Root: tlog.RecordHash([]byte("another history"))}
		signed, err := keys.Sign(forged)
		require.NoError(t, err)
		res = b.run(t, "log", "consistency", oldFile, write("forged", signed), "--keys", keysFile)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "REWRITTEN")
		res = b.run(t, "log", "prove", "e00009", "--keys", keysFile, "--checkpoint", filepath.Join(dir, "forged"))
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stdout, "e00009: NOT IN THE LOG")

		// An older checkpoint given as the newer: the log would have shrunk.
		res = b.run(t, "log", "consistency", newFile, oldFile, "--keys", keysFile)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "SHRANK")
	})

	t.Run("CheckpointsThatDoNotVerifyAreRefused", func(t *testing.T) {
		note, err := os.ReadFile(oldFile)
		require.NoError(t, err)
		edited := strings.Replace(string(note), "\n"+strconv.FormatInt(old.Size, 10)+"\n", "\n"+strconv.FormatInt(old.Size+1, 10)+"\n", 1)
		require.NotEqual(t, string(note), edited)
		res := b.run(t, "log", "prove", "e00001", "--keys", keysFile, "--checkpoint", write("edited", edited))
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "the checkpoint does not verify")

		stranger, err := integrity.ParseKeys(storetest.LogKey(t))
		require.NoError(t, err)
		res = b.run(t, "log", "checkpoint", "--keys", write("stranger", strings.Join(stranger.VerifierKeys(), "\n")))
		require.Equal(t, exitFailure, res.code, "a checkpoint signed by a key not trusted")
		require.Contains(t, res.stderr, "the checkpoint does not verify")

		res = b.run(t, "log", "checkpoint")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "--keys is required")
	})
}
