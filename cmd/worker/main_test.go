package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/storetest"
)

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("RefusesAnUnmigratedDatabase", func(t *testing.T) {
		t.Parallel()
		url := storetest.EmptyDatabaseURL(t)
		err := run(t.Context(), nil, func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		}, io.Discard)
		require.ErrorContains(t, err, "api migrate")
	})

	t.Run("CreatesMissingPartitionsAndStopsOnCancel", func(t *testing.T) {
		t.Parallel()
		pool := storetest.Pool(t)
		// Three months from the 1st (from the 31st, AddDate would skip a
		// month: November 30 + 3 months is March 2).
		now := time.Now().UTC()
		future := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 3, 0)
		partition := fmt.Sprintf("events_%04d_%02d", future.Year(), future.Month())
		_, err := pool.Exec(t.Context(), "DROP TABLE IF EXISTS "+partition)
		require.NoError(t, err)

		url, logKey := storetest.DatabaseURL(t), storetest.LogKey(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		var stderr bytes.Buffer
		go func() {
			done <- run(ctx, nil, func(k string) string {
				switch k {
				case "DATABASE_URL":
					return url
				case "AUDEX_LOG_KEY":
					return logKey
				}
				return ""
			}, &stderr)
		}()
		require.Eventually(t, func() bool {
			var exists bool
			err := pool.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", partition).Scan(&exists)
			return err == nil && exists
		}, 20*time.Second, 100*time.Millisecond, "the partition maintenance job recreates %s", partition)
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(40 * time.Second):
			t.Fatal("worker did not stop")
		}
	})

	t.Run("ServesMetricsWhenAsked", func(t *testing.T) {
		t.Parallel()
		url, logKey := storetest.DatabaseURL(t), storetest.LogKey(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		stderr := &logtest.Buffer{}
		go func() {
			done <- run(ctx, nil, func(k string) string {
				switch k {
				case "AUDEX_LOG_KEY":
					return logKey
				case "DATABASE_URL":
					return url
				case "AUDEX_WORKER_METRICS_LISTEN":
					return "127.0.0.1:0"
				}
				return ""
			}, stderr)
		}()
		var addr string
		require.Eventually(t, func() bool {
			addr = stderr.ListenAddr("worker_metrics_listening")
			return addr != ""
		}, 20*time.Second, 50*time.Millisecond, "log: %s", stderr)

		res, err := http.Get("http://" + addr + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		for _, want := range []string{`audex_exports{status="completed"}`, `audex_purges{status="queued"}`, "audex_purged_events_total", "go_goroutines"} {
			require.Contains(t, string(body), want)
		}
		res, err = http.Get("http://" + addr + "/")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode, "only /metrics is served")

		cancel()
		require.NoError(t, <-done)
		_, err = http.Get("http://" + addr + "/metrics")
		require.Error(t, err, "the listener closes with the worker")
	})
}
