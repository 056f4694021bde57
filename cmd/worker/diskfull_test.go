package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
)

// TestLocalDestinationDiskFull runs a worker that sees the local
// destination's folder as a file system of 1 MiB (a tmpfs mounted in a
// mount namespace of its own, by unshare) and an export of about 10 MiB:
// the export fails with destination_full at once (no retries that fill the
// same disk), its parts are deleted and no manifest is left.
func TestLocalDestinationDiskFull(t *testing.T) {
	t.Parallel()
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		msg := "unshare -rm (a mount namespace of the test's own) is not allowed here: " + strings.TrimSpace(string(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := setupProcesses(t)
	b.seed(t, 30_000)
	w := b.startWorkerUnder(t, "unshare", "-rm", "sh", "-c",
		`mount -t tmpfs -o size=1m audex-full "$0" && exec "$1"`, b.folder)
	// What the worker sees of the folder: its mount namespace's view.
	seen := filepath.Join("/proc", strconv.Itoa(w.cmd.Process.Pid), "root", b.folder)
	var fs syscall.Statfs_t
	require.NoError(t, syscall.Statfs(seen, &fs))
	require.EqualValues(t, 0x01021994, fs.Type, "the worker sees a tmpfs there (TMPFS_MAGIC)")

	started := time.Now()
	id := b.createExport(t, `{"since":"2026-04-01","until":"2026-05-01","format":"jsonl","destination":{"name":"local"},"part_max_records":2000}`)
	var e audex.Export
	require.Eventually(t, func() bool {
		e = b.status(t, id)
		return e.Finished()
	}, time.Minute, 20*time.Millisecond)
	require.Equal(t, audex.ExportFailed, e.Status)
	require.NotNil(t, e.Error)
	t.Logf("failed after %s, %d attempt(s): %s", time.Since(started).Round(time.Millisecond), e.Attempts, e.Error.Message)
	require.Equal(t, "destination_full", e.Error.Code)
	require.Contains(t, e.Error.Message, "no space left")
	require.Equal(t, 1, e.Attempts, "not retried into the same full disk")
	require.Nil(t, e.ManifestKey)

	// The worker deletes the parts after it records the failure: wait
	// for it (on a busy machine the status can be read in between).
	require.Eventually(t, func() bool {
		entries, err := os.ReadDir(seen)
		require.NoError(t, err, "the worker's view of the folder")
		var left []string
		for _, entry := range entries {
			files, _ := os.ReadDir(filepath.Join(seen, entry.Name()))
			for _, f := range files {
				left = append(left, entry.Name()+"/"+f.Name())
			}
		}
		return len(left) == 0
	}, 10*time.Second, 20*time.Millisecond, "no part, temporary file or manifest left")
	host, err := os.ReadDir(b.folder)
	require.NoError(t, err)
	require.Empty(t, host, "nothing was written outside the full file system")
}
