package api_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()

	t.Run("ExportsWithRealCredentialsShowNoneInLogsErrorsResponsesOrManifests", func(t *testing.T) {
		t.Parallel()
		s3, _ := sinktest.NewBucket(t, "s3")
		azure, _ := sinktest.NewBucket(t, "azure_blob")
		// The same bucket with a wrong secret: the export fails, and its
		// error is where an SDK would most likely echo a credential.
		wrong := s3
		wrong.SecretAccessKeyEnv = "AUDEX_TEST_WRONG_SECRET"
		wrongSecret := "wrong-" + sinktest.RandomName("secret-")
		secrets := map[string]string{
			"the S3 secret key":     os.Getenv(s3.SecretAccessKeyEnv),
			"the wrong S3 secret":   wrongSecret,
			"the Azure account key": accountKey(t, os.Getenv(azure.ConnectionStringEnv)),
		}
		for what, s := range secrets {
			require.GreaterOrEqual(t, len(s), 8, "%s is known to the test", what)
		}
		logger, logs := logtest.NewLogger()
		b := newExportBundle(t, exportOptions{worker: true, logger: logger,
			extra: map[string]sinks.Config{"s3": s3, "azure": azure, "wrong": wrong},
			getenvs: map[string]func(string) string{"wrong": func(k string) string {
				if k == "AUDEX_TEST_WRONG_SECRET" {
					return wrongSecret
				}
				return os.Getenv(k)
			}},
		})
		b.seed(t, 3000, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))

		var seen strings.Builder // every response body and manifest
		for _, dest := range []string{"s3", "azure", "wrong"} {
			id := b.createExport(t, map[string]any{"since": "2026-04-01", "until": "2026-05-01", "format": "jsonl",
				"destination": map[string]any{"name": dest}})
			e := b.waitExport(t, id)
			if dest == "wrong" {
				require.Equal(t, "failed", e.Status)
				require.Equal(t, "access_denied", e.Error.Code)
			} else {
				require.Equal(t, "completed", e.Status, "error: %+v", e.Error)
				seen.Write(b.readObject(t, dest, *e.ManifestKey))
			}
			seen.Write(b.do(t, "GET", "/v1/audit/exports/"+id, b.key, nil).body)
		}
		list := b.do(t, "GET", "/v1/audit/exports?limit=100", b.key, nil)
		require.Equal(t, http.StatusOK, list.status)
		seen.Write(list.body)
		seen.Write(b.do(t, "GET", "/v1/audit/events?action_prefix=audit.&limit=100", b.key, nil).body)

		require.Contains(t, logs.String(), "export_completed", "the worker's log lines were captured")
		require.Contains(t, logs.String(), "export_failed")
		for what, s := range secrets {
			require.NotContains(t, logs.String(), s, "%s is in a log line", what)
			require.NotContains(t, seen.String(), s, "%s is in a response or manifest", what)
		}
	})
}

// accountKey is the AccountKey of an Azure connection string.
func accountKey(t *testing.T, conn string) string {
	t.Helper()
	for part := range strings.SplitSeq(conn, ";") {
		if k, ok := strings.CutPrefix(part, "AccountKey="); ok {
			return k
		}
	}
	t.Fatal("no AccountKey in the connection string")
	return ""
}
