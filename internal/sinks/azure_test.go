package sinks_test

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestAzure runs the conformance suite against Azurite
// (scripts/emulators.sh).
func TestAzure(t *testing.T) {
	t.Parallel()
	sinktest.RequireEnv(t, "AUDEX_TEST_AZURE_BLOB_ENDPOINT")
	conn := sinktest.RequireEnv(t, "AUDEX_TEST_AZURE_CONNECTION_STRING")
	ctx := t.Context()

	admin, err := azblob.NewClientFromConnectionString(conn, nil)
	require.NoError(t, err)
	container := sinktest.RandomName("audex-sinktest-")
	_, err = admin.CreateContainer(ctx, container, nil)
	require.NoError(t, err)

	newSink := func(t *testing.T, container string, getenv func(string) string) sinks.Sink {
		t.Helper()
		s, err := sinks.New(t.Context(), sinks.Config{
			Type: "azure_blob", Bucket: container, ConnectionStringEnv: "AUDEX_TEST_AZURE_CONNECTION_STRING",
		}, getenv)
		require.NoError(t, err)
		return s
	}

	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, container, os.Getenv) })

	t.Run("MissingContainerIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, missing, os.Getenv), sinks.ErrBucketNotFound, missing)
	})

	t.Run("WrongKeyIsErrAccessDenied", func(t *testing.T) {
		t.Parallel()
		key := make([]byte, 64)
		_, _ = rand.Read(key)
		wrongKey := base64.StdEncoding.EncodeToString(key)
		var parts []string
		for part := range strings.SplitSeq(conn, ";") {
			if strings.HasPrefix(part, "AccountKey=") {
				part = "AccountKey=" + wrongKey
			}
			parts = append(parts, part)
		}
		wrongConn := strings.Join(parts, ";")
		getenv := func(name string) string {
			if name == "AUDEX_TEST_AZURE_CONNECTION_STRING" {
				return wrongConn
			}
			return os.Getenv(name)
		}
		sinktest.RequirePutFails(t, newSink(t, container, getenv), sinks.ErrAccessDenied, container, wrongKey, wrongConn)
	})
}
