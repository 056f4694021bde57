package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/servertest"
)

// testBundle is a running server, a client of it and the environment that
// points audexctl at it.
type testBundle struct {
	srv    *servertest.Server
	client *client.Client
	env    map[string]string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupWith(t, nil)
}

// setupWith is setup with more destinations beside "local", and env
// (NAME=value) for the server's processes; audexctl's environment names
// the processes' configuration file (AUDEX_CONFIG).
func setupWith(t *testing.T, destinations []config.Destination, env ...string) *testBundle {
	t.Helper()
	srv := servertest.StartWith(t, destinations, env...)
	c, err := client.New(srv.URL, srv.Key)
	require.NoError(t, err)
	return &testBundle{srv: srv, client: c, env: map[string]string{"AUDEX_URL": srv.URL, "AUDEX_API_KEY": srv.Key, "AUDEX_CONFIG": srv.ConfigPath}}
}

// result is what one run of audexctl wrote and returned.
type result struct {
	stdout, stderr string
	code           int
}

// runOptions change how runCLI runs audexctl.
type runOptions struct {
	env      map[string]string
	terminal bool // stderr is taken for a terminal
	stdout   *logtest.Buffer
}

// runCLI runs audexctl in-process with ctx and args.
func runCLI(ctx context.Context, o runOptions, args ...string) result {
	stdout, stderr := o.stdout, &logtest.Buffer{}
	if stdout == nil {
		stdout = &logtest.Buffer{}
	}
	c := &cli{stdout: stdout, stderr: stderr, getenv: func(name string) string { return o.env[name] },
		isTerminal: func(w io.Writer) bool { return o.terminal && w == stderr }, now: time.Now}
	code := c.run(ctx, args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// run runs audexctl against the bundle's server, stderr not a terminal.
func (b *testBundle) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t.Context(), runOptions{env: b.env}, args...)
}

// lines splits output into its lines, without the last newline.
func lines(out string) []string {
	out = strings.TrimSuffix(out, "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// start is when the events of docs begin.
var start = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// docs returns n events a minute apart from start: id e<i>, action
// doc.<i%3>, actor user u<i%7>, a target doc d<i> for even i, failed for
// i%5 == 0.
func docs(n int) []client.NewEvent {
	events := make([]client.NewEvent, n)
	for i := range events {
		ok := i%5 != 0
		events[i] = client.NewEvent{ID: fmt.Sprintf("e%05d", i), OccurredAt: start.Add(time.Duration(i) * time.Minute),
			Action: fmt.Sprintf("doc.%d", i%3), Actor: client.Actor{ID: fmt.Sprintf("u%d", i%7), Type: ptr("user")}, Success: &ok}
		if i%2 == 0 {
			events[i].Target = &client.Target{ID: ptr(fmt.Sprintf("d%d", i)), Type: ptr("doc")}
		}
	}
	return events
}

// ingest stores events through the client, 1000 at a time.
func (b *testBundle) ingest(t *testing.T, events []client.NewEvent) {
	t.Helper()
	for from := 0; from < len(events); from += 1000 {
		res, err := b.client.Events.Ingest(t.Context(), events[from:min(from+1000, len(events))])
		require.NoError(t, err)
		require.Equal(t, min(1000, len(events)-from), res.Accepted+res.Duplicates)
	}
}

func ptr[T any](v T) *T { return &v }

func TestConfigurationAndErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.ingest(t, docs(3))

	t.Run("MissingURLIsAUsageError", func(t *testing.T) {
		res := runCLI(ctx, runOptions{env: map[string]string{"AUDEX_API_KEY": b.srv.Key}}, "events", "list")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "no server URL: set --url or AUDEX_URL")
		require.Empty(t, res.stdout)
	})

	t.Run("MissingKeyIsAUsageError", func(t *testing.T) {
		res := runCLI(ctx, runOptions{env: map[string]string{"AUDEX_URL": b.srv.URL}}, "retention", "get")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "no API key: set AUDEX_API_KEY (or --api-key)")
	})

	t.Run("AURLThatIsNotHTTPIsAUsageError", func(t *testing.T) {
		res := runCLI(ctx, runOptions{env: map[string]string{"AUDEX_URL": "127.0.0.1:8080", "AUDEX_API_KEY": b.srv.Key}}, "retention", "get")
		require.Equal(t, exitUsage, res.code)
		require.Contains(t, res.stderr, "is not an http(s) URL")
	})

	t.Run("FlagsWinOverTheEnvironment", func(t *testing.T) {
		env := map[string]string{"AUDEX_URL": "http://127.0.0.1:1", "AUDEX_API_KEY": "not-a-key"}
		res := runCLI(ctx, runOptions{env: env}, "--url", b.srv.URL, "--api-key", b.srv.Key, "events", "list", "--action_prefix", "doc.", "--json")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, lines(res.stdout), 3)

		res = runCLI(ctx, runOptions{env: b.env}, "--api-key", "not-a-key", "retention", "get")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "get retention: unauthenticated: ")
	})

	t.Run("ABadSinceIsTheServersInvalidArgument", func(t *testing.T) {
		res := b.run(t, "events", "list", "--since", "last tuesday")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "audexctl: list events: invalid_argument: since must be an RFC 3339 time with Z or an offset (2026-04-20T00:00:00Z) or a date (2026-04-20) (field since)")
		require.NotContains(t, res.stderr, "--help", "not a usage error")
		require.Empty(t, res.stdout)

		res = b.run(t, "events", "tail", "--until", "2026-04-01", "--since", "2026-04-02")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "invalid_argument: until must be after since (field until)")
	})

	t.Run("BadCommandLinesAreUsageErrors", func(t *testing.T) {
		for _, args := range [][]string{
			{"events", "list", "--no-such-flag"},
			{"events", "lst"},
			{"events", "list", "--limit", "-1"},
			{"events", "list", "--limit", "many"},
			{"events", "tail", "--interval", "0s"},
			{"export", "status"},
			{"export", "verify", "exp_x", "--folder", "a", "--destination", "b"},
			{"export", "create", "--until", "2026-05-01"},
			{"export", "create", "--since", "April", "--until", "2026-05-01"},
			{"export", "create", "--since", "2026-04-01", "--until", "2026-05-01", "--success", "yes"},
			{"purge", "--dry-run"},
			{"purge", "--before", "2026-04-01", "--dry-run", "--wait"},
			{"retention", "set"},
			{"retention", "set", "ten"},
			{"retention", "set", "10", "--clear"},
		} {
			res := b.run(t, args...)
			require.Equal(t, exitUsage, res.code, "%v: %s", args, res.stderr)
			require.Contains(t, res.stderr, "for usage.", "%v", args)
		}
	})

	t.Run("TheKeyIsNeverPrinted", func(t *testing.T) {
		wrongKey := "audex_wrong_" + strings.Repeat("k", 32)
		runs := []struct {
			env  map[string]string
			args []string
		}{
			{b.env, []string{"events", "list", "--json"}},
			{b.env, []string{"events", "list", "--since", "nope"}},
			{b.env, []string{"export", "status", "exp_nope"}},
			{b.env, []string{"export", "status", "exp_nope", "--json"}},
			{b.env, []string{"purge", "--before", "1999-01-01", "--dry-run"}},
			{b.env, []string{"retention", "set", "0"}},
			{b.env, []string{"--help"}},
			{b.env, []string{"events", "list", "--help"}},
			{b.env, []string{"--api-key", wrongKey, "events", "list"}},
			{map[string]string{"AUDEX_API_KEY": b.srv.Key}, []string{"events", "list"}},
			{map[string]string{"AUDEX_API_KEY": wrongKey, "AUDEX_URL": b.srv.URL}, []string{"export", "status", "exp_nope"}},
			// Nothing listens there: the client's retries end in a transport error.
			{map[string]string{"AUDEX_API_KEY": b.srv.Key, "AUDEX_URL": "http://127.0.0.1:1"}, []string{"retention", "get"}},
		}
		failures := 0
		for _, r := range runs {
			res := runCLI(ctx, runOptions{env: r.env}, r.args...)
			for _, key := range []string{b.srv.Key, wrongKey} {
				require.NotContains(t, res.stdout, key, "%v", r.args)
				require.NotContains(t, res.stderr, key, "%v", r.args)
			}
			if res.code != exitOK {
				failures++
			}
		}
		require.Equal(t, 8, failures, "the error paths ran")
	})
}
