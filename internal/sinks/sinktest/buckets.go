package sinktest

import (
	"os"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"

	"github.com/audex-dev/audex/internal/sinks"
)

// SinkTypes are the four backends, in the order tests run them.
var SinkTypes = []string{"file", "s3", "gcs", "azure_blob"}

// S3Admin returns an S3 client of MinIO's administrator, to create buckets
// and look into them behind a sink's back.
func S3Admin(t *testing.T) *s3.Client {
	t.Helper()
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(RequireEnv(t, "AUDEX_TEST_S3_ENDPOINT")), UsePathStyle: true, Region: os.Getenv("AUDEX_TEST_S3_REGION"),
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv("AUDEX_TEST_S3_ACCESS_KEY_ID"), os.Getenv("AUDEX_TEST_S3_SECRET_ACCESS_KEY"), ""),
	})
}

// NewBucket creates an empty bucket (container, folder) on the real server
// of sink type typ that scripts/emulators.sh started, and returns the
// sinks.Config that reaches it with the getenv to open it with. A missing
// server skips the test, or fails it under CI=true (RequireEnv).
func NewBucket(t *testing.T, typ string) (sinks.Config, func(string) string) {
	t.Helper()
	ctx := t.Context()
	name := RandomName("audex-test-")
	switch typ {
	case "file":
		return sinks.Config{Type: "file", Bucket: t.TempDir()}, os.Getenv
	case "s3":
		_, err := S3Admin(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
		require.NoError(t, err)
		return sinks.Config{Type: "s3", Bucket: name, Region: os.Getenv("AUDEX_TEST_S3_REGION"), Endpoint: os.Getenv("AUDEX_TEST_S3_ENDPOINT"),
			AccessKeyIDEnv: "AUDEX_TEST_S3_ACCESS_KEY_ID", SecretAccessKeyEnv: "AUDEX_TEST_S3_SECRET_ACCESS_KEY"}, os.Getenv
	case "gcs":
		host := RequireEnv(t, "AUDEX_TEST_GCS_HOST")
		admin, err := storage.NewClient(ctx, option.WithEndpoint("http://"+host+"/storage/v1/"), option.WithoutAuthentication())
		require.NoError(t, err)
		defer admin.Close()
		require.NoError(t, admin.Bucket(name).Create(ctx, "audex-test", nil))
		return sinks.Config{Type: "gcs", Bucket: name}, func(k string) string {
			if k == "STORAGE_EMULATOR_HOST" {
				return host
			}
			return os.Getenv(k)
		}
	case "azure_blob":
		conn := RequireEnv(t, "AUDEX_TEST_AZURE_CONNECTION_STRING")
		admin, err := azblob.NewClientFromConnectionString(conn, nil)
		require.NoError(t, err)
		_, err = admin.CreateContainer(ctx, name, nil)
		require.NoError(t, err)
		return sinks.Config{Type: "azure_blob", Bucket: name, ConnectionStringEnv: "AUDEX_TEST_AZURE_CONNECTION_STRING"}, os.Getenv
	}
	t.Fatalf("unknown sink type %q", typ)
	return sinks.Config{}, nil
}
