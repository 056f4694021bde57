// Package servertest runs audex as it is deployed, for the tests of its
// clients (the Go SDK, audexctl): the api and worker commands built from
// this checkout and started as processes on a database of the test's own,
// with a local-folder destination. It is imported by tests only.
package servertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/logtest"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// Server is a running api process and worker process.
type Server struct {
	// URL is the api's base URL, on 127.0.0.1.
	URL string
	// Pool is a pool on the server's database, for checks.
	Pool *pgxpool.Pool
	// Tenant is a tenant of the test's own; Key has every tenant scope of
	// it (read, write, export, admin).
	Tenant, Key string
	// Folder is the "local" destination's folder.
	Folder string
	// ConfigPath is the processes' configuration file (AUDEX_CONFIG).
	ConfigPath string
	// APILog and WorkerLog are the processes' log lines so far.
	APILog, WorkerLog *logtest.Buffer
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds cmd/api and cmd/worker once per test binary and returns
// the folder that holds them.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		if binDir, buildErr = os.MkdirTemp("", "audex-servertest-bin"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/api", "./cmd/worker")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/api ./cmd/worker: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Start starts the api and the worker on a new migrated database, with
// exports of attempts short enough for tests, and stops them when the test
// ends. env adds NAME=value settings for both (AUDEX_RATE_LIMIT=5, say).
func Start(t testing.TB, env ...string) *Server {
	t.Helper()
	return StartWith(t, nil, env...)
}

// StartWith is Start with more destinations beside "local" in the
// processes' configuration file (Server.ConfigPath).
func StartWith(t testing.TB, destinations []config.Destination, env ...string) *Server {
	t.Helper()
	return startOn(t, storetest.IsolatedDatabaseURL(t), destinations, env)
}

// StartOn is Start on the migrated database of dbURL (a
// storetest.Server's, say).
func StartOn(t testing.TB, dbURL string, env ...string) *Server {
	t.Helper()
	return startOn(t, dbURL, nil, env)
}

func startOn(t testing.TB, dbURL string, destinations []config.Destination, env []string) *Server {
	t.Helper()
	bin := Binaries(t)
	pool, err := store.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(pool.Close)
	s := &Server{Pool: pool, Tenant: storetest.NewTenant(t), Folder: t.TempDir(), APILog: &logtest.Buffer{}, WorkerLog: &logtest.Buffer{}}
	s.Key = storetest.NewKey(t, pool, s.Tenant, audex.ScopeRead, audex.ScopeWrite, audex.ScopeExport, audex.ScopeAdmin)
	s.ConfigPath = filepath.Join(t.TempDir(), "audex.yaml")
	destinations = append([]config.Destination{{Name: "local", Type: "file", Bucket: s.Folder}}, destinations...)
	var file strings.Builder
	file.WriteString("destinations:\n")
	for _, d := range destinations {
		fmt.Fprintf(&file, "  - name: %q\n", d.Name)
		for _, kv := range [][2]string{{"type", d.Type}, {"bucket", d.Bucket}, {"region", d.Region}, {"endpoint", d.Endpoint},
			{"access_key_id_env", d.AccessKeyIDEnv}, {"secret_access_key_env", d.SecretAccessKeyEnv}, {"connection_string_env", d.ConnectionStringEnv}} {
			if kv[1] != "" {
				fmt.Fprintf(&file, "    %s: %q\n", kv[0], kv[1])
			}
		}
	}
	file.WriteString("exports:\n  attempt_window: 2s\n  lease_ttl: 5s\n  reaper_interval: 1s\n  min_part_max_records: 1\n")
	if err := os.WriteFile(s.ConfigPath, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(append(os.Environ(), "DATABASE_URL="+dbURL, "AUDEX_CONFIG="+s.ConfigPath, "AUDEX_LISTEN=127.0.0.1:0",
		"AUDEX_LOG_KEY="+storetest.LogKey(t)), env...)
	start(t, filepath.Join(bin, "api"), env, s.APILog, "api_listening")
	start(t, filepath.Join(bin, "worker"), env, s.WorkerLog, "worker_started")
	s.URL = "http://" + s.APILog.ListenAddr("api_listening")
	return s
}

// start runs a command and waits until it logs ready.
func start(t testing.TB, path string, env []string, log *logtest.Buffer, ready string) {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env, cmd.Stderr = env, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), `"msg":"`+ready+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %s within 30 s:\n%s", filepath.Base(path), ready, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
