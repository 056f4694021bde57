package webhook

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/config"
)

const secret = "s3cr3t-webhook-key"

// received is what an endpoint saw of one request.
type received struct {
	header http.Header
	body   []byte
}

// endpoint is a real HTTP server on 127.0.0.1 that answers with the
// statuses of answers in turn (the last one from then on) and records
// what it received.
func endpoint(t *testing.T, answers ...int) (*httptest.Server, func() []received) {
	t.Helper()
	var mu sync.Mutex
	var got []received
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), body})
		status := answers[min(len(got), len(answers))-1]
		mu.Unlock()
		if status == http.StatusFound {
			w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("answer " + http.StatusText(status)))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

// client returns a client of the endpoint's URL (with a token in its
// query), its host allowed, and short pauses.
func client(t *testing.T, srv *httptest.Server) *Client {
	t.Helper()
	env := map[string]string{"HOOK_URL": srv.URL + "/audit?token=t0ken", "HOOK_SECRET": secret}
	c, err := FromDestination(config.Destination{Name: "siem", Type: "webhook", URLEnv: "HOOK_URL", SecretEnv: "HOOK_SECRET",
		AllowedHosts: []string{srv.Listener.Addr().String()}}, func(k string) string { return env[k] })
	require.NoError(t, err)
	c.pause = 10 * time.Millisecond
	return c
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(s))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	body := gzipped(t, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n")
	batch := Batch{StreamID: "str_1", Seq: 7, ID: "str_1-000007", Body: body}

	t.Run("ASignedGzippedNDJSONPost", func(t *testing.T) {
		t.Parallel()
		srv, got := endpoint(t, http.StatusNoContent)
		require.NoError(t, client(t, srv).Deliver(t.Context(), batch))
		require.Len(t, got(), 1)
		r := got()[0]
		require.Equal(t, body, r.body)
		require.Equal(t, "application/x-ndjson", r.header.Get("Content-Type"))
		require.Equal(t, "gzip", r.header.Get("Content-Encoding"))
		require.Equal(t, "str_1", r.header.Get("X-Audex-Stream-Id"))
		require.Equal(t, "7", r.header.Get("X-Audex-Batch-Seq"))
		require.Equal(t, "str_1-000007", r.header.Get("X-Audex-Batch-Id"))
		require.Equal(t, Sign([]byte(secret), r.body), r.header.Get("X-Audex-Signature"), "an HMAC of the bytes received")
		zr, err := gzip.NewReader(bytes.NewReader(r.body))
		require.NoError(t, err)
		lines, err := io.ReadAll(zr)
		require.NoError(t, err)
		require.Equal(t, "{\"id\":\"a\"}\n{\"id\":\"b\"}\n", string(lines))
	})

	t.Run("AServerThatFailsThenRecoversGetsTheBatchWithTheSameID", func(t *testing.T) {
		t.Parallel()
		srv, got := endpoint(t, 500, 503, 200)
		require.NoError(t, client(t, srv).Deliver(t.Context(), batch))
		require.Len(t, got(), 3)
		for _, r := range got() {
			require.Equal(t, "str_1-000007", r.header.Get("X-Audex-Batch-Id"))
		}
	})

	t.Run("TooManyRequestsWaitsForRetryAfter", func(t *testing.T) {
		t.Parallel()
		srv, got := endpoint(t, 429, 200)
		start := time.Now()
		require.NoError(t, client(t, srv).Deliver(t.Context(), batch))
		require.Len(t, got(), 2)
		require.GreaterOrEqual(t, time.Since(start), time.Second)
	})

	t.Run("AServerDownForGoodIsATransientError", func(t *testing.T) {
		t.Parallel()
		srv, got := endpoint(t, 503)
		err := client(t, srv).Deliver(t.Context(), batch)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrRejected)
		require.Len(t, got(), 3, "three tries")
		require.Contains(t, err.Error(), "answered 503")
	})

	t.Run("AClientErrorIsPermanent", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{400, 401, 404, 410} {
			srv, got := endpoint(t, status)
			err := client(t, srv).Deliver(t.Context(), batch)
			require.ErrorIs(t, err, ErrRejected)
			require.Len(t, got(), 1, "not retried")
			require.Contains(t, err.Error(), fmt.Sprintf("answered %d: \"answer %s\"", status, http.StatusText(status)))
		}
	})

	t.Run("ARedirectIsNotFollowed", func(t *testing.T) {
		t.Parallel()
		srv, got := endpoint(t, http.StatusFound)
		err := client(t, srv).Deliver(t.Context(), batch)
		require.ErrorIs(t, err, ErrRejected)
		require.Len(t, got(), 1)
	})

	t.Run("AnUnreachableEndpointIsTransientAndNamesNoSecretOrToken", func(t *testing.T) {
		t.Parallel()
		srv, _ := endpoint(t, 200)
		c := client(t, srv)
		srv.Close()
		err := c.Deliver(t.Context(), batch)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrRejected)
		require.NotContains(t, err.Error(), secret)
		require.NotContains(t, err.Error(), "t0ken")
		require.Contains(t, err.Error(), "/audit")
	})

	t.Run("ATimeoutIsTransient", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		t.Cleanup(srv.Close)
		c := client(t, srv)
		c.http.Timeout, c.tries = 200*time.Millisecond, 1
		err := c.Deliver(t.Context(), batch)
		require.Error(t, err)
		require.NotErrorIs(t, err, ErrRejected)
	})
}

func TestFromDestination(t *testing.T) {
	t.Parallel()
	d := config.Destination{Name: "siem", Type: "webhook", URLEnv: "HOOK_URL", SecretEnv: "HOOK_SECRET", AllowedHosts: []string{"siem.example.com"}}
	for name, tc := range map[string]struct {
		url, want string
	}{
		"AHostNotAllowed":   {"https://internal.example.com/hook", "not in allowed_hosts"},
		"AnotherPort":       {"https://siem.example.com.evil.net/hook", "not in allowed_hosts"},
		"NotHTTP":           {"file:///etc/passwd", "http or https"},
		"UserInfo":          {"https://user:pw@siem.example.com/hook", "http or https URL without user info"},
		"NoURL":             {"", "HOOK_URL is not set"},
		"AllowedWithAToken": {"https://siem.example.com/hook?token=x", ""},
	} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"HOOK_URL": tc.url, "HOOK_SECRET": secret}
			c, err := FromDestination(d, func(k string) string { return env[k] })
			if tc.want == "" {
				require.NoError(t, err)
				require.Equal(t, "https://siem.example.com/hook", c.Where())
				return
			}
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), secret)
			if u, _ := url.Parse(tc.url); u != nil && u.User != nil {
				require.NotContains(t, err.Error(), "pw")
			}
		})
	}
}
