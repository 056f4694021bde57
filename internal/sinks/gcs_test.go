package sinks_test

import (
	"os"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestGCS runs the conformance suite against fake-gcs-server
// (scripts/emulators.sh). fake-gcs-server checks no credentials, so there
// is no access-denied case here.
func TestGCS(t *testing.T) {
	t.Parallel()
	host := sinktest.RequireEnv(t, "AUDEX_TEST_GCS_HOST")
	ctx := t.Context()

	admin, err := storage.NewClient(ctx, option.WithEndpoint("http://"+host+"/storage/v1/"), option.WithoutAuthentication())
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	bucket := sinktest.RandomName("audex-sinktest-")
	require.NoError(t, admin.Bucket(bucket).Create(ctx, "audex-test", nil))

	// The sink finds the emulator the way it would in production, through
	// STORAGE_EMULATOR_HOST, here given by getenv rather than set on the
	// process (which parallel tests could not do).
	getenv := func(name string) string {
		if name == "STORAGE_EMULATOR_HOST" {
			return host
		}
		return os.Getenv(name)
	}
	newSink := func(t *testing.T, bucket string) sinks.Sink {
		t.Helper()
		s, err := sinks.New(t.Context(), sinks.Config{Type: "gcs", Bucket: bucket}, getenv)
		require.NoError(t, err)
		return s
	}

	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, bucket) })

	t.Run("MissingBucketIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, missing), sinks.ErrBucketNotFound, missing)
	})
}
