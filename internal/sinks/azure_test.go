package sinks_test

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// TestAzure runs the conformance suite against Azurite
// (scripts/emulators.sh).
func TestAzure(t *testing.T) {
	t.Parallel()
	sinktest.RequireEnv(t, "AUDEX_TEST_AZURE_BLOB_ENDPOINT")
	cfg, getenv := sinktest.NewBucket(t, "azure_blob")
	sinktest.Run(t, func(t *testing.T) sinks.Sink { return newSink(t, cfg, getenv) })

	t.Run("MissingContainerIsErrBucketNotFound", func(t *testing.T) {
		t.Parallel()
		missing := cfg
		missing.Bucket = sinktest.RandomName("audex-missing-")
		sinktest.RequirePutFails(t, newSink(t, missing, getenv), sinks.ErrBucketNotFound, missing.Bucket)
	})

	t.Run("WrongKeyIsErrAccessDenied", func(t *testing.T) {
		t.Parallel()
		key := make([]byte, 64)
		_, _ = rand.Read(key)
		wrongKey := base64.StdEncoding.EncodeToString(key)
		var parts []string
		for part := range strings.SplitSeq(getenv(cfg.ConnectionStringEnv), ";") {
			if strings.HasPrefix(part, "AccountKey=") {
				part = "AccountKey=" + wrongKey
			}
			parts = append(parts, part)
		}
		wrongConn := strings.Join(parts, ";")
		wrongKeyEnv := func(name string) string {
			if name == cfg.ConnectionStringEnv {
				return wrongConn
			}
			return getenv(name)
		}
		sinktest.RequirePutFails(t, newSink(t, cfg, wrongKeyEnv), sinks.ErrAccessDenied, cfg.Bucket, wrongKey, wrongConn)
	})
}
