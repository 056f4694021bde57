package sinks_test

import (
	"testing"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestGCS runs the conformance suite against fake-gcs-server
// (scripts/emulators.sh). The sink finds the emulator the way it would in
// production, through STORAGE_EMULATOR_HOST, given by NewBucket's getenv
// rather than set on the process (which parallel tests could not do).
// fake-gcs-server checks no credentials, so there is no access-denied case
// here.
func TestGCS(t *testing.T) {
	t.Parallel()
	cfg, getenv := sinktest.NewBucket(t, "gcs")
	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, cfg, getenv) })

	t.Run("MissingBucketIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := cfg
		missing.Bucket = sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, missing, getenv), sinks.ErrBucketNotFound, missing.Bucket)
	})
}
