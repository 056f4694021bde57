package integrity_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex/internal/integrity"
)

func TestKeysSignCheckpointsThatTheirVerifierKeysOpen(t *testing.T) {
	t.Parallel()
	// Many keys: a base64 key holding + must parse too.
	for range 20 {
		skey, err := integrity.GenerateKey("audex.example")
		require.NoError(t, err)
		keys, err := integrity.ParseKeys(skey)
		require.NoError(t, err)
		require.Len(t, keys.VerifierKeys(), 1)
		require.True(t, strings.HasPrefix(keys.VerifierKeys()[0], "audex.example+"))
		c := integrity.Checkpoint{Origin: "audex.example/t1", Size: 42, Root: tlog.RecordHash([]byte("x"))}
		signed, err := keys.Sign(c)
		require.NoError(t, err)
		opened, err := integrity.OpenCheckpoint([]byte(signed), keys.VerifierKeys())
		require.NoError(t, err)
		require.Equal(t, c, opened)
	}
}

func TestOpenCheckpointRefusesWhatItCannotTrust(t *testing.T) {
	t.Parallel()
	keys := newKeys(t)
	strangers := newKeys(t)
	c := integrity.Checkpoint{Origin: "audex/t1", Size: 7, Root: tlog.RecordHash([]byte("x"))}
	signed, err := keys.Sign(c)
	require.NoError(t, err)

	_, err = integrity.OpenCheckpoint([]byte(signed), strangers.VerifierKeys())
	require.Error(t, err, "another key's signature")
	forged := strings.Replace(signed, "\n7\n", "\n8\n", 1)
	_, err = integrity.OpenCheckpoint([]byte(forged), keys.VerifierKeys())
	require.Error(t, err, "a changed size")
	_, err = integrity.OpenCheckpoint([]byte("audex/t1\n7\n"), keys.VerifierKeys())
	require.Error(t, err, "no signature")
}

func TestParseCheckpoint(t *testing.T) {
	t.Parallel()
	root := tlog.RecordHash([]byte("x"))
	c := integrity.Checkpoint{Origin: "audex/t1", Size: 3, Root: root}
	got, err := integrity.ParseCheckpoint(c.Text() + "extension line\n")
	require.NoError(t, err)
	require.Equal(t, c, got)
	for _, bad := range []string{"", "audex/t1\n3\n", "\n3\n" + c.Text()[len("audex/t1\n3\n"):], "audex/t1\n03\nAAAA\n", "audex/t1\n-1\nAAAA\n", "audex/t1\n3\nnot base64\n", "audex/t1\n3\nAAAA\n"} {
		_, err := integrity.ParseCheckpoint(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "log.key")
	_, err := integrity.LoadKeys("", path)
	require.ErrorContains(t, err, "api migrate")
	created, err := integrity.EnsureKeyFile(path, "audex")
	require.NoError(t, err)
	require.True(t, created)
	first, err := integrity.LoadKeys("", path)
	require.NoError(t, err)
	created, err = integrity.EnsureKeyFile(path, "audex")
	require.NoError(t, err)
	require.False(t, created, "an existing file is kept")

	require.NoError(t, integrity.AddKey(path, "audex"))
	rotated, err := integrity.LoadKeys("", path)
	require.NoError(t, err)
	require.Len(t, rotated.VerifierKeys(), 2)
	require.Equal(t, first.VerifierKeys()[0], rotated.VerifierKeys()[0], "the old key stays published")
	signed, err := rotated.Sign(integrity.Checkpoint{Origin: "audex/t", Size: 1})
	require.NoError(t, err)
	_, err = integrity.OpenCheckpoint([]byte(signed), first.VerifierKeys())
	require.Error(t, err, "the newest key signs")

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	fromEnv, err := integrity.LoadKeys("# comment\n\n"+string(data), filepath.Join(t.TempDir(), "absent"))
	require.NoError(t, err, "the keys' text wins over the file")
	require.Equal(t, rotated.VerifierKeys(), fromEnv.VerifierKeys())
	_, err = integrity.ParseKeys("\n# only a comment\n")
	require.ErrorContains(t, err, "none given")
}

func newKeys(t *testing.T) *integrity.Keys {
	t.Helper()
	skey, err := integrity.GenerateKey("audex")
	require.NoError(t, err)
	keys, err := integrity.ParseKeys(skey)
	require.NoError(t, err)
	return keys
}
