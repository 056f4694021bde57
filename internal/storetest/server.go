package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/testenv"
)

// Server is a PostgreSQL server of one test's own, which the test may stop
// and start again to see what the database going away does to audex.
type Server struct {
	// URL is the server's "postgres" database, migrated.
	URL     string
	bin     string
	dir     string
	port    int
	asOwner []string
}

// NewServer creates a cluster in a temporary folder with the server
// programs in AUDEX_TEST_PG_BIN (scripts/test.sh sets it), starts it on a
// free port of 127.0.0.1, migrates its "postgres" database, and removes it
// all when the test ends. Without AUDEX_TEST_PG_BIN the test is skipped,
// or fails when CI=true.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := testenv.Require(t, "AUDEX_TEST_PG_BIN", "run the tests with `make test`, which sets it")
	s := newServerDir(t, bin)
	if err := s.run(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	s.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := store.Open(ctx, s.URL)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer p.Close()
	if err := store.Migrate(ctx, p); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// newServerDir returns a Server (not yet created) in a new temporary
// folder that its programs in bin may use, on a free port, removed with
// the server when the test ends. PostgreSQL refuses to run as root: as
// root the cluster belongs to the postgres user, in a folder that user
// can reach.
func newServerDir(t testing.TB, bin string) *Server {
	t.Helper()
	base := ""
	var owner *user.User
	if os.Geteuid() == 0 {
		var err error
		if owner, err = user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		base = "/var/tmp"
	}
	dir, err := os.MkdirTemp(base, "audex-test-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{bin: bin, dir: dir, port: freePort(t)}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.asOwner = []string{"runuser", "-u", "postgres", "--"}
	}
	t.Cleanup(func() {
		_ = s.pgCtl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	return s
}

// NewStandby makes a streaming replica of s, as an operator would: a
// base backup (pg_basebackup -R, which writes primary_conninfo and
// standby.signal), started as a hot standby on a free port, with the
// server settings of settings ("recovery_min_apply_delay = '300ms'", say)
// added. Its URL reads the primary's "postgres" database as far as it has
// replayed it.
func (s *Server) NewStandby(t testing.TB, settings ...string) *Server {
	t.Helper()
	r := newServerDir(t, s.bin)
	if err := r.run(filepath.Join(s.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", "postgres",
		"-D", r.dataDir(), "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		t.Fatalf("pg_basebackup: %v", err)
	}
	if len(settings) > 0 {
		line := strings.Join(settings, "\n") + "\n"
		if err := r.run("sh", "-c", `printf '%s' "$1" >> "$2"`, "sh", line, filepath.Join(r.dataDir(), "postgresql.auto.conf")); err != nil {
			t.Fatalf("standby settings: %v", err)
		}
	}
	r.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", r.port)
	r.Start(t)
	return r
}

// Stop shuts the server down the way a restart does: sessions are ended
// (clients see "terminating connection due to administrator command") and
// new connections are refused until Start.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.pgCtl("stop", "-m", "fast"); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off", s.port, s.dir)
	if err := s.pgCtl("start", "-w", "-l", filepath.Join(s.dir, "server.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("start PostgreSQL: %v\n%s", err, log)
	}
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

func (s *Server) pgCtl(args ...string) error {
	return s.run(filepath.Join(s.bin, "pg_ctl"), append([]string{"-D", s.dataDir()}, args...)...)
}

// run runs a server program as the cluster's owner.
func (s *Server) run(name string, args ...string) error {
	argv := append(append(append([]string{}, s.asOwner...), name), args...)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v: %s", filepath.Base(name), err, out)
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
