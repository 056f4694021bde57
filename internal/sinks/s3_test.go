package sinks_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestS3 runs the conformance suite against MinIO (scripts/emulators.sh).
func TestS3(t *testing.T) {
	t.Parallel()
	cfg, getenv := sinktest.NewBucket(t, "s3")
	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, cfg, getenv) })

	t.Run("MissingBucketIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := cfg
		missing.Bucket = sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, missing, getenv), sinks.ErrBucketNotFound, missing.Bucket)
	})

	t.Run("WrongSecretIsErrAccessDenied", func(t *testing.T) {
		t.Parallel()
		const wrong = "wrong-secret-0123456789abcdef"
		wrongSecret := func(name string) string {
			if name == cfg.SecretAccessKeyEnv {
				return wrong
			}
			return getenv(name)
		}
		sinktest.RequirePutFails(t, newSink(t, cfg, wrongSecret), sinks.ErrAccessDenied, cfg.Bucket, wrong)
	})

	t.Cleanup(func() {
		// Every failed multipart upload was aborted: none is left pending.
		out, err := sinktest.S3Admin(t).ListMultipartUploads(context.WithoutCancel(t.Context()), &s3.ListMultipartUploadsInput{Bucket: aws.String(cfg.Bucket)})
		require.NoError(t, err)
		require.Empty(t, out.Uploads, "pending multipart uploads")
	})
}

// newSink opens the sink of cfg, failing the test if it cannot.
func newSink(t *testing.T, cfg sinks.Config, getenv func(string) string) sinks.Sink {
	t.Helper()
	if getenv == nil {
		getenv = os.Getenv
	}
	s, err := sinks.New(t.Context(), cfg, getenv)
	require.NoError(t, err)
	return s
}
