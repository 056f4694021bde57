package sinks_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestS3 runs the conformance suite against MinIO (scripts/emulators.sh).
func TestS3(t *testing.T) {
	t.Parallel()
	endpoint := sinktest.RequireEnv(t, "AUDEX_TEST_S3_ENDPOINT")
	region := os.Getenv("AUDEX_TEST_S3_REGION")
	ctx := t.Context()

	admin := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Region:       region,
		Credentials: credentials.NewStaticCredentialsProvider(
			os.Getenv("AUDEX_TEST_S3_ACCESS_KEY_ID"), os.Getenv("AUDEX_TEST_S3_SECRET_ACCESS_KEY"), ""),
	})
	bucket := sinktest.RandomName("audex-sinktest-")
	_, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)

	config := func(bucket string) sinks.Config {
		return sinks.Config{
			Type: "s3", Bucket: bucket, Region: region, Endpoint: endpoint,
			AccessKeyIDEnv: "AUDEX_TEST_S3_ACCESS_KEY_ID", SecretAccessKeyEnv: "AUDEX_TEST_S3_SECRET_ACCESS_KEY",
		}
	}
	newSink := func(t *testing.T, cfg sinks.Config, getenv func(string) string) sinks.Sink {
		t.Helper()
		s, err := sinks.New(t.Context(), cfg, getenv)
		require.NoError(t, err)
		return s
	}

	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, config(bucket), os.Getenv) })

	t.Run("MissingBucketIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, config(missing), os.Getenv), sinks.ErrBucketNotFound, missing)
	})

	t.Run("WrongSecretIsErrAccessDenied", func(t *testing.T) {
		t.Parallel()
		const wrong = "wrong-secret-0123456789abcdef"
		getenv := func(name string) string {
			if name == "AUDEX_TEST_S3_SECRET_ACCESS_KEY" {
				return wrong
			}
			return os.Getenv(name)
		}
		sinktest.RequirePutFails(t, newSink(t, config(bucket), getenv), sinks.ErrAccessDenied, bucket, wrong)
	})

	t.Cleanup(func() {
		// Every failed multipart upload was aborted: none is left pending.
		out, err := admin.ListMultipartUploads(context.WithoutCancel(ctx), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
		require.NoError(t, err)
		require.Empty(t, out.Uploads, "pending multipart uploads")
	})
}
