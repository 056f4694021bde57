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

	// Issue 14: a symbolic link inside the folder never takes the sink
	// out of it. Each subtest has a folder of its own outside the sink's,
	// which a link inside the sink's folder points to.

	t.Run("PutUnderLinkedFolderFailsAndCreatesNothingOutside", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := t.TempDir()
		require.NoError(t, os.Symlink(outside, filepath.Join(b.dir, "linked")))

		for _, key := range []string{"linked/part-00001.csv", "linked/new/part-00001.csv"} {
			_, err := b.sink.Put(t.Context(), key, strings.NewReader("id\n"))
			require.ErrorIs(t, err, sinks.ErrAccessDenied, key)
			require.True(t, sinks.IsPermanent(err))
			require.Contains(t, err.Error(), b.dir, "the error names the folder")
		}
		require.Empty(t, filesUnder(t, outside), "no file, temporary or not, outside")
		entries, err := os.ReadDir(outside)
		require.NoError(t, err)
		require.Empty(t, entries, "no folder created outside")
		require.Equal(t, []string{"linked"}, filesUnder(t, b.dir), "nothing but the link inside")
	})

	t.Run("OpenUnderLinkedFolderFails", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := outsideFile(t, "sub/secret.csv")
		// A relative link this time ("../../…"); the others are absolute.
		rel, err := filepath.Rel(b.dir, outside)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(rel, filepath.Join(b.dir, "linked")))

		for _, key := range []string{"linked/sub/secret.csv", "linked/missing.csv"} {
			rc, err := b.sink.Open(t.Context(), key)
			require.ErrorIs(t, err, sinks.ErrAccessDenied, key)
			require.Nil(t, rc)
		}
	})

	t.Run("DeleteUnderLinkedFolderFailsAndLeavesOutsideFile", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := outsideFile(t, "sub/secret.csv")
		require.NoError(t, os.Symlink(outside, filepath.Join(b.dir, "linked")))

		err := b.sink.Delete(t.Context(), "linked/sub/secret.csv")
		requireOutsideFile(t, filepath.Join(outside, "sub", "secret.csv"))
		require.ErrorIs(t, err, sinks.ErrAccessDenied)
		require.FileExists(t, filepath.Join(b.dir, "linked", "sub", "secret.csv"), "the link remains")
	})

	t.Run("OpenOfLinkedFileDoesNotReadOutsideFile", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := outsideFile(t, "secret.csv")
		require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(b.dir, "part-00001.csv")))

		rc, err := b.sink.Open(t.Context(), "part-00001.csv")
		require.ErrorIs(t, err, sinks.ErrAccessDenied)
		require.Nil(t, rc)
	})

	t.Run("PutOverLinkedFileReplacesLinkAndLeavesOutsideFile", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := outsideFile(t, "secret.csv")
		link := filepath.Join(b.dir, "part-00001.csv")
		require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), link))

		_, err := b.sink.Put(t.Context(), "part-00001.csv", strings.NewReader("new\n"))
		require.NoError(t, err)
		requireOutsideFile(t, filepath.Join(outside, "secret.csv"))
		info, err := os.Lstat(link)
		require.NoError(t, err)
		require.True(t, info.Mode().IsRegular(), "the link was replaced by the object")
		data, err := os.ReadFile(link)
		require.NoError(t, err)
		require.Equal(t, "new\n", string(data))
	})

	t.Run("DeleteOfLinkedFileRemovesOnlyLink", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		outside := outsideFile(t, "secret.csv")
		link := filepath.Join(b.dir, "a", "part-00001.csv")
		require.NoError(t, os.Mkdir(filepath.Dir(link), 0o750))
		require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), link))

		require.NoError(t, b.sink.Delete(t.Context(), "a/part-00001.csv"))
		requireOutsideFile(t, filepath.Join(outside, "secret.csv"))
		_, err := os.Lstat(link)
		require.ErrorIs(t, err, fs.ErrNotExist)
	})

	t.Run("ListReportsNoLinkNorWhatItLeadsTo", func(t *testing.T) {
		t.Parallel()
		b := setupFile(t)
		ctx := t.Context()
		outside := outsideFile(t, "sub/secret.csv")
		require.NoError(t, os.Symlink(outside, filepath.Join(b.dir, "linked")))
		require.NoError(t, os.Symlink(filepath.Join(outside, "sub", "secret.csv"), filepath.Join(b.dir, "secret.csv")))
		_, err := b.sink.Put(ctx, "real/part-00001.csv", strings.NewReader("id\n"))
		require.NoError(t, err)

		for prefix, want := range map[string][]string{
			"":           {"real/part-00001.csv"},
			"linked":     {},
			"linked/":    {},
			"linked/sub": {},
			// A prefix deep enough to name a folder behind the link.
			"linked/sub/":   {},
			"linked/sub/se": {},
			"secret":        {},
		} {
			objects, err := b.sink.List(ctx, prefix)
			require.NoError(t, err, "prefix %q", prefix)
			keys := []string{}
			for _, o := range objects {
				keys = append(keys, o.Key)
			}
			require.Equal(t, want, keys, "prefix %q", prefix)
		}
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

// outsideData is what outsideFile writes.
const outsideData = "outside the sink's folder\n"

// outsideFile writes outsideData to the file name ("/"-separated) in a new
// folder outside the sink's, and returns the folder.
func outsideFile(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.FromSlash(name))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, []byte(outsideData), 0o600))
	return dir
}

// requireOutsideFile checks that the file p that outsideFile wrote is
// still there, unchanged.
func requireOutsideFile(t *testing.T, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	require.NoError(t, err, "the file outside the folder is still there")
	require.Equal(t, outsideData, string(data), "the file outside the folder is unchanged")
}
