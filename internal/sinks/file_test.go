package sinks_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

type fileBundle struct {
	dir  string
	sink sinks.Sink
}

func setupFile(t *testing.T) *fileBundle {
	t.Helper()
	dir := t.TempDir()
	s, err := sinks.New(t.Context(), sinks.Config{Type: "file", Bucket: dir}, os.Getenv)
	require.NoError(t, err)
	return &fileBundle{dir: dir, sink: s}
}

// TestFile runs the conformance suite against a folder, plus what only a
// folder has: its files.
func TestFile(t *testing.T) {
	t.Parallel()

	sinktest.Run(t, func(t *testing.T) sinks.Sink { return setupFile(t).sink })

	t.Run("MissingFolderIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := filepath.Join(t.TempDir(), "missing")
		s, err := sinks.New(t.Context(), sinks.Config{Type: "file", Bucket: missing}, os.Getenv)
		require.NoError(t, err)

		sinktest.RequirePutFails(t, s, sinks.ErrBucketNotFound, missing)
		_, err = os.Stat(missing)
		require.ErrorIs(t, err, fs.ErrNotExist, "the folder is not created")
	})

	t.Run("PutCreatesSubFoldersAndNoTemporaryFileRemains", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		ctx := t.Context()

		_, err := b.sink.Put(ctx, "a/b/part-00001.csv", strings.NewReader("id\n"))
		require.NoError(t, err)
		_, err = b.sink.Put(ctx, "a/b/part-00002.csv", &failing{})
		require.Error(t, err)

		require.Equal(t, []string{"a/b/part-00001.csv"}, filesUnder(t, b.dir))
		data, err := os.ReadFile(filepath.Join(b.dir, "a", "b", "part-00001.csv"))
		require.NoError(t, err)
		require.Equal(t, "id\n", string(data))
	})

	t.Run("DeleteRemovesEmptiedFolders", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		ctx := t.Context()
		_, err := b.sink.Put(ctx, "x/y/z/manifest.json", strings.NewReader("{}"))
		require.NoError(t, err)

		require.NoError(t, b.sink.Delete(ctx, "x/y/z/manifest.json"))
		entries, err := os.ReadDir(b.dir)
		require.NoError(t, err)
		require.Empty(t, entries)
	})

	t.Run("RelativeFolderIsResolvedAgainstWorkingDirectory", func(t *testing.T) {
		t.Parallel()
		wd, err := os.Getwd()
		require.NoError(t, err)
		abs := t.TempDir()
		// A relative path from here to the temporary folder, so that
		// nothing is written into the source tree.
		rel, err := filepath.Rel(wd, abs)
		require.NoError(t, err)
		require.False(t, filepath.IsAbs(rel))
		s, err := sinks.New(t.Context(), sinks.Config{Type: "file", Bucket: rel}, os.Getenv)
		require.NoError(t, err)

		_, err = s.Put(t.Context(), "k/part-00001.jsonl", strings.NewReader("{}\n"))
		require.NoError(t, err)
		require.FileExists(t, filepath.Join(abs, "k", "part-00001.jsonl"))
	})
}

type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n > 0 {
		return 0, fs.ErrClosed
	}
	f.n++
	return copy(p, "partial"), nil
}

// filesUnder lists every file under dir, temporary ones included.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	}))
	return files
}
