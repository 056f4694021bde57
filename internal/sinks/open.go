package sinks

import (
	"context"
	"fmt"
	"regexp"

	"github.com/audex-dev/audex/internal/config"
)

// Config says which store a Sink writes to and how it finds its
// credentials. It holds no secret: credentials come from each SDK's
// standard chain, or from environment variables that the *Env fields name
// (the caller maps its own configuration to this; sinks does not import
// internal/config).
type Config struct {
	// Type is "s3", "gcs", "azure_blob" or "file".
	Type string
	// Bucket is the S3 or GCS bucket, the Azure container, or the folder
	// (a relative folder is resolved against the working directory).
	Bucket string
	// Region is the S3 region; empty means the AWS chain's, else us-east-1.
	Region string
	// Endpoint overrides the service endpoint: an S3-compatible server
	// (path-style addressing is then used), a GCS endpoint, or for Azure
	// the account URL when AccountURL is empty.
	Endpoint string

	// AccessKeyIDEnv, SecretAccessKeyEnv and SessionTokenEnv (S3) name the
	// environment variables holding static credentials; the first two go
	// together. Empty: the AWS default chain (env, profile, role).
	AccessKeyIDEnv     string
	SecretAccessKeyEnv string
	SessionTokenEnv    string

	// CredentialsFileEnv (GCS) names the environment variable holding the
	// path of a service-account key file. Empty: application default
	// credentials, or none when STORAGE_EMULATOR_HOST is set.
	CredentialsFileEnv string

	// ConnectionStringEnv (Azure) names the environment variable holding a
	// storage connection string. AccountURL (Azure) is the account's blob
	// endpoint (https://ACCOUNT.blob.core.windows.net) used with the
	// default Azure credential. With neither, AZURE_STORAGE_CONNECTION_STRING
	// is used.
	ConnectionStringEnv string
	AccountURL          string
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New returns the Sink that cfg describes, reading the environment
// variables it names through getenv. It makes no request: a missing bucket
// or refused credentials show on the first call (as ErrBucketNotFound or
// ErrAccessDenied). Errors name the bucket and the variables, never their
// values. The Sink is safe for concurrent use and meant to be reused.
func New(ctx context.Context, cfg Config, getenv func(string) string) (Sink, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%s sink: bucket is required", cfg.Type)
	}
	for _, name := range []string{cfg.AccessKeyIDEnv, cfg.SecretAccessKeyEnv, cfg.SessionTokenEnv, cfg.CredentialsFileEnv, cfg.ConnectionStringEnv} {
		if name != "" && !envName.MatchString(name) {
			return nil, fmt.Errorf("%s sink for %q: %q is not an environment variable name", cfg.Type, cfg.Bucket, name)
		}
	}
	switch cfg.Type {
	case "s3":
		return newS3(ctx, cfg, getenv)
	case "gcs":
		return newGCS(ctx, cfg, getenv)
	case "azure_blob":
		return newAzure(cfg, getenv)
	case "file":
		return newFile(cfg)
	default:
		return nil, fmt.Errorf("sink type %q: want s3, gcs, azure_blob or file", cfg.Type)
	}
}

// requireEnv returns the value of the environment variable name, or an
// error naming the variable (never a value) when it is empty.
func requireEnv(getenv func(string) string, store, name string) (string, error) {
	v := getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s: environment variable %s is empty or not set", store, name)
	}
	return v, nil
}

// FromDestination is the sink configuration of a configured destination:
// the worker writes through it and audexctl export verify reads through
// it, with the same credentials.
func FromDestination(d config.Destination) Config {
	return Config{
		Type: d.Type, Bucket: d.Bucket, Region: d.Region, Endpoint: d.Endpoint,
		AccessKeyIDEnv: d.AccessKeyIDEnv, SecretAccessKeyEnv: d.SecretAccessKeyEnv, SessionTokenEnv: d.SessionTokenEnv,
		CredentialsFileEnv:  d.CredentialsFileEnv,
		ConnectionStringEnv: d.ConnectionStringEnv, AccountURL: d.AccountURL,
	}
}
