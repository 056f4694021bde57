package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/audex-dev/audex/internal/pgserver"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/testenv"
)

// Server is a PostgreSQL server of one test's own, which the test may stop
// and start again to see what the database going away does to audex.
type Server struct {
	// URL is the server's "postgres" database, migrated.
	URL string
	pg  *pgserver.Server
	bin string
}

// testServerOptions make a test's server fast and its data disposable.
const testServerOptions = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

// NewServer creates a cluster in a temporary folder with the server
// programs in AUDEX_TEST_PG_BIN (scripts/test.sh sets it), starts it on a
// free port of 127.0.0.1, migrates its "postgres" database, and removes it
// all when the test ends. Without AUDEX_TEST_PG_BIN the test is skipped,
// or fails when CI=true.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := testenv.Require(t, "AUDEX_TEST_PG_BIN", "run the tests with `make test`, which sets it")
	pg, err := pgserver.Init(bin)
	if err != nil {
		t.Fatalf("initdb: %v", err)
	}
	s := serve(t, pg, bin)
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

// NewStandby makes a streaming replica of s (pgserver.Standby) with the
// server settings of settings ("recovery_min_apply_delay = '300ms'",
// say) and starts it as a hot standby. Its URL reads the primary's
// "postgres" database as far as it has replayed it.
func (s *Server) NewStandby(t testing.TB, settings ...string) *Server {
	t.Helper()
	pg, err := pgserver.Standby(s.bin, s.URL, settings...)
	if err != nil {
		t.Fatalf("standby: %v", err)
	}
	return serve(t, pg, s.bin)
}

// serve starts pg, removed when the test ends.
func serve(t testing.TB, pg *pgserver.Server, bin string) *Server {
	t.Helper()
	t.Cleanup(pg.Remove)
	s := &Server{URL: pg.URL, pg: pg, bin: bin}
	s.Start(t)
	return s
}

// Stop shuts the server down the way a restart does: sessions are ended
// (clients see "terminating connection due to administrator command") and
// new connections are refused until Start.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.pg.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Start starts the server (again) and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.pg.Start(testServerOptions); err != nil {
		t.Fatal(err)
	}
}
