package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/storetest"
)

// envOf is the environment of vars, with a log signing key of the test's
// own unless vars names one (so that nothing writes ./data/).
func envOf(t *testing.T, vars map[string]string) func(string) string {
	if vars["AUDEX_LOG_KEY"] == "" && vars["AUDEX_LOG_KEY_FILE"] == "" {
		vars["AUDEX_LOG_KEY"] = storetest.LogKey(t)
	}
	return func(k string) string { return vars[k] }
}

// runOut runs the command to completion and returns its stdout.
func runOut(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, envOf(t, env), &stdout, &stderr)
	return stdout.String(), err
}

func TestRun(t *testing.T) {
	t.Parallel()

	t.Run("ServeRefusesAnUnmigratedDatabaseAndMigrateFixesIt", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": storetest.EmptyDatabaseURL(t), "AUDEX_LISTEN": "127.0.0.1:0"}
		_, err := runOut(t, env, "serve")
		require.ErrorContains(t, err, "api migrate")
		_, err = runOut(t, env, "keys", "list")
		require.ErrorContains(t, err, "api migrate")

		out, err := runOut(t, env, "migrate")
		require.NoError(t, err)
		require.Contains(t, out, "up to date")
		out, err = runOut(t, env, "migrate")
		require.NoError(t, err, "migrate is idempotent")
		require.Contains(t, out, "up to date")
	})

	t.Run("MigrateCreatesTheLogKeyFileAndLogKeyPrintsAndRotatesIt", func(t *testing.T) {
		t.Parallel()
		keyFile := filepath.Join(t.TempDir(), "keys", "log.key")
		env := map[string]string{"DATABASE_URL": storetest.DatabaseURL(t), "AUDEX_LOG_KEY_FILE": keyFile, "AUDEX_LOG_NAME": "audex.example"}
		out, err := runOut(t, env, "migrate")
		require.NoError(t, err)
		require.Contains(t, out, "created the log signing key file "+keyFile)
		info, err := os.Stat(keyFile)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "readable by its owner only")
		secret, err := os.ReadFile(keyFile)
		require.NoError(t, err)

		out, err = runOut(t, env, "migrate")
		require.NoError(t, err)
		require.NotContains(t, out, "created the log signing key", "an existing key is kept")
		first, err := runOut(t, env, "log-key")
		require.NoError(t, err)
		require.Regexp(t, `^audex\.example\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+\n$`, first, "one verifier key")
		require.NotContains(t, first, strings.TrimSpace(string(secret)))

		rotated, err := runOut(t, env, "log-key", "rotate")
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(rotated), "\n")
		require.Len(t, lines, 2, "the old key stays published")
		require.Equal(t, strings.TrimSpace(first), lines[0])
		require.NotEqual(t, lines[0], lines[1])

		_, err = runOut(t, map[string]string{"AUDEX_LOG_KEY": "PRIVATE+KEY+x+nothex+zzz"}, "log-key")
		require.ErrorContains(t, err, "not a signed-note private key")
		require.NotContains(t, err.Error(), "nothex", "a key is never quoted")
		_, err = runOut(t, map[string]string{"AUDEX_LOG_KEY": string(secret)}, "log-key", "rotate")
		require.ErrorContains(t, err, "AUDEX_LOG_KEY holds the signing keys")
	})

	t.Run("KeysCreateListRevokeCheck", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": storetest.DatabaseURL(t)}
		tenant := storetest.NewTenant(t)
		key, err := runOut(t, env, "keys", "create", "--tenant", tenant, "--scopes", "audit:read,audit:write", "--name", "ci")
		require.NoError(t, err)
		key = strings.TrimSpace(key)
		require.Regexp(t, `^adx_[A-Za-z0-9_-]{43}$`, key, "stdout holds only the key")

		list, err := runOut(t, env, "keys", "list", "--tenant", tenant)
		require.NoError(t, err)
		require.Contains(t, list, "audit:read,audit:write")
		require.Contains(t, list, "ci")
		require.NotContains(t, list, key, "the key is never listed")
		other := storetest.NewTenant(t)
		_, err = runOut(t, env, "keys", "create", "--tenant", other, "--scopes", "audit:read", "--name", "other")
		require.NoError(t, err)
		list, err = runOut(t, env, "keys", "list", "--tenant", tenant)
		require.NoError(t, err)
		require.NotContains(t, list, other, "--tenant lists that tenant's keys only")
		all, err := runOut(t, env, "keys", "list")
		require.NoError(t, err)
		require.Contains(t, all, tenant, "without --tenant, every tenant's keys")
		require.Contains(t, all, other)

		_, err = runOut(t, env, "keys", "check", key)
		require.NoError(t, err)
		out, err := runOut(t, env, "keys", "revoke", key)
		require.NoError(t, err)
		require.Contains(t, out, "revoked key_")
		_, err = runOut(t, env, "keys", "revoke", key)
		require.NoError(t, err, "revoking twice is not an error")
		_, err = runOut(t, env, "keys", "check", key)
		require.Error(t, err)

		_, err = runOut(t, env, "keys", "create", "--tenant", tenant, "--scopes", "audit:everything")
		require.ErrorContains(t, err, "unknown scope")
		_, err = runOut(t, env, "keys", "create", "--scopes", "audit:read")
		require.ErrorContains(t, err, "--tenant")
		_, err = runOut(t, env, "keys", "revoke", "key_nope")
		require.ErrorContains(t, err, "no key")
	})

	t.Run("ServesUntilCancelledThenShutsDown", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": storetest.DatabaseURL(t), "AUDEX_LISTEN": "127.0.0.1:0"}
		key, err := runOut(t, env, "keys", "create", "--tenant", storetest.NewTenant(t), "--scopes", "audit:read,audit:write")
		require.NoError(t, err)
		key = strings.TrimSpace(key)

		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stderr := &logtest.Buffer{}
		done := make(chan error, 1)
		go func() { done <- run(ctx, nil, envOf(t, env), io.Discard, stderr) }()
		addr := waitForListen(t, stderr)

		body := `{"events":[{"action":"user.login","actor":{"id":"alice"}}]}`
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/audit/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusCreated, res.StatusCode)

		req, _ = http.NewRequest("GET", "http://"+addr+"/v1/audit/events?action=user.login", nil)
		req.Header.Set("X-API-Key", key)
		res, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		var page struct {
			Events []map[string]any `json:"events"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&page))
		res.Body.Close()
		require.Len(t, page.Events, 1)

		res, err = http.Get("http://" + addr + "/readyz")
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)

		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not stop after cancel")
		}
		require.NotContains(t, stderr.String(), key, "the key never reaches the log")
	})

	t.Run("SlowAndOversizedHeadersAreCutOff", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": storetest.DatabaseURL(t), "AUDEX_LISTEN": "127.0.0.1:0"}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stderr := &logtest.Buffer{}
		go func() { _ = run(ctx, nil, envOf(t, env), io.Discard, stderr) }()
		addr := waitForListen(t, stderr)

		// A client that never finishes its headers (slowloris) is hung
		// up on after the 10 s header timeout, not held forever.
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: audex\r\nX-Slow: "))
		require.NoError(t, err)
		start := time.Now()
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, err = io.ReadAll(conn)
		require.NoError(t, err, "the server closed the connection before the client's own deadline")
		require.Less(t, time.Since(start), 20*time.Second)

		// Headers over 64 KiB are refused.
		req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 80<<10))
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, res.StatusCode)
	})

	t.Run("SlowBodyIsCutOff", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"DATABASE_URL": storetest.DatabaseURL(t), "AUDEX_LISTEN": "127.0.0.1:0"}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stderr := &logtest.Buffer{}
		go func() { _ = run(ctx, nil, envOf(t, env), io.Discard, stderr) }()
		addr := waitForListen(t, stderr)
		key := storetest.NewKey(t, storetest.Pool(t), storetest.NewTenant(t), audex.ScopeWrite)

		// A client that announces 1,000 bytes of body and sends one a
		// second is not held for the 17 minutes it asks for: the server
		// stops reading at its 60 s read timeout and closes the
		// connection, answering a 400 in the error shape.
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer conn.Close()
		_, err = fmt.Fprintf(conn, "POST /v1/audit/events HTTP/1.1\r\nHost: audex\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", key)
		require.NoError(t, err)
		start := time.Now()
		closed := make(chan []byte)
		go func() {
			answer, _ := io.ReadAll(conn)
			closed <- answer
		}()
		var answer []byte
	drip:
		for {
			select {
			case answer = <-closed:
				break drip
			case <-time.After(time.Second):
				if time.Since(start) > 90*time.Second {
					t.Fatal("the server still reads a body sent at a byte a second after 90 s")
				}
				_, _ = conn.Write([]byte(" "))
			}
		}
		took := time.Since(start)
		t.Logf("cut off after %s: %q", took.Round(time.Second), answer)
		require.Less(t, took, 75*time.Second)
		require.True(t, strings.HasPrefix(string(answer), "HTTP/1.1 400 "), "a 400 in the error shape")
		require.Contains(t, string(answer), `"code":"invalid_argument"`)
	})

	t.Run("BadConfigurationIsAnError", func(t *testing.T) {
		t.Parallel()
		_, err := runOut(t, map[string]string{"AUDEX_RETENTION_INTERVAL": "daily"}, "serve")
		require.ErrorContains(t, err, "AUDEX_RETENTION_INTERVAL")
		_, err = runOut(t, map[string]string{"DATABASE_URL": storetest.DatabaseURL(t)}, "frobnicate")
		require.ErrorContains(t, err, "unknown command")
	})

	t.Run("UnreachableDatabaseErrorHidesThePassword", func(t *testing.T) {
		t.Parallel()
		_, err := runOut(t, map[string]string{"DATABASE_URL": "postgres://audex:s3cret-pw@127.0.0.1:1/audex"}, "migrate")
		require.Error(t, err)
		require.NotContains(t, err.Error(), "s3cret-pw")
	})
}

// waitForListen reads the address from the api_listening log line.
func waitForListen(t *testing.T, stderr *logtest.Buffer) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if addr := stderr.ListenAddr("api_listening"); addr != "" {
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("api did not start listening; log: %s", stderr.String())
	return ""
}
