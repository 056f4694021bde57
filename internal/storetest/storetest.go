// Package storetest gives tests a real, migrated PostgreSQL database of
// their own: one per test binary, cloned from a template that is migrated
// once per schema version, so that test packages run in parallel. Tests in
// a binary share the database and keep out of each other's way by using a
// tenant of their own (NewTenant). It is imported by tests only.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/migrations"
)

// DatabasePrefix starts the name of every database that tests create, so
// that `make test` can drop the ones a previous run left behind.
const DatabasePrefix = "audex_test_"

// adminURL is a database where tests may create databases.
func adminURL() string {
	if v := os.Getenv("AUDEX_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

var (
	once    sync.Once
	dbURL   string
	pool    *pgxpool.Pool
	initErr error
)

// DatabaseURL returns the URL of this test binary's database, creating it
// on first use. A database that cannot be reached fails the test.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	once.Do(func() { dbURL, pool, initErr = setup() })
	if initErr != nil {
		t.Fatalf("test database: %v (is PostgreSQL running? `make test` starts one)", initErr)
	}
	return dbURL
}

// Pool returns a pool on this test binary's database.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	DatabaseURL(t)
	return pool
}

func setup() (string, *pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		return "", nil, err
	}
	defer admin.Close(ctx)
	template, err := ensureTemplate(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	name := DatabasePrefix + randomHex(6)
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, template)); err != nil {
		return "", nil, fmt.Errorf("create %s: %w", name, err)
	}
	u := withDatabase(adminURL(), name)
	p, err := store.Open(ctx, u)
	return u, p, err
}

// ensureTemplate returns the name of a migrated template database for the
// current migrations, creating it under an advisory lock if needed.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	name := DatabasePrefix + "tmpl_" + migrationsHash()
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(hashtext('audex_test_template'))`); err != nil {
		return "", err
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('audex_test_template'))`) //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_wip"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	p, err := store.Open(ctx, withDatabase(adminURL(), building))
	if err != nil {
		return "", err
	}
	err = store.Migrate(ctx, p)
	p.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, name)); err != nil {
		return "", err
	}
	return name, nil
}

// migrationsHash names the template after the migrations and the month
// (Migrate creates the partitions around the current month).
func migrationsHash() string {
	h := sha256.New()
	_ = fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(migrations.FS, path)
			h.Write([]byte(path))
			h.Write(b)
		}
		return nil
	})
	h.Write([]byte(time.Now().UTC().Format("2006-01")))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func withDatabase(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTenant returns a tenant id that no other test uses.
func NewTenant(t testing.TB) string {
	t.Helper()
	return "t_" + strings.ToLower(randomHex(6))
}

// NewKey creates an API key for tenant with scopes in pool's database and
// returns the plain key.
func NewKey(t testing.TB, pool *pgxpool.Pool, tenant string, scopes ...string) string {
	t.Helper()
	plain, hash := audex.NewPlainKey()
	if _, err := store.CreateAPIKey(context.Background(), pool, tenant, "test", scopes, hash); err != nil {
		t.Fatalf("create key: %v", err)
	}
	return plain
}

// LogKey returns a new signing key of the integrity log (the value of
// AUDEX_LOG_KEY) for a test's api and worker.
func LogKey(t testing.TB) string {
	t.Helper()
	key, err := integrity.GenerateKey("audex-test")
	if err != nil {
		t.Fatalf("generate log key: %v", err)
	}
	return key
}

// ForgeEvent writes a copy of the tenant's event id under the id forged
// straight into the events and event_ids tables, as someone with the
// database but not audex would: for the tests that attack the integrity
// log.
func ForgeEvent(t testing.TB, pool *pgxpool.Pool, tenant, id, forged string) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		for _, st := range []struct {
			sql  string
			args []any
		}{
			{`CREATE TEMP TABLE forged ON COMMIT DROP AS SELECT * FROM events WHERE tenant_id = $1 AND id = $2`, []any{tenant, id}},
			{`UPDATE forged SET id = $1`, []any{forged}},
			{`INSERT INTO events SELECT * FROM forged`, nil},
			{`INSERT INTO event_ids (tenant_id, id, occurred_at) SELECT tenant_id, id, occurred_at FROM forged`, nil},
		} {
			if _, err := tx.Exec(context.Background(), st.sql, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("forge event: %v", err)
	}
}

// HoldIngest begins a transaction that holds the tenant's ingest lock as
// an ingest under way does, so that an export waits at its as_of barrier
// until the transaction ends, and returns it. It is rolled back when the
// test ends, if it has not ended before.
func HoldIngest(t testing.TB, pool *pgxpool.Pool, tenant string) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(context.Background(), `SELECT pg_advisory_xact_lock_shared(hashtextextended('audex_ingest:' || $1, 0))`, tenant); err != nil {
		t.Fatalf("hold the ingest lock: %v", err)
	}
	return tx
}

// AtIngestBarrier reports whether a session of pool's database waits for
// the ingests under way (store.WaitForIngests), having seen which they
// are: it sleeps between its looks at them, and is looked at for up to
// 100 ms.
func AtIngestBarrier(t testing.TB, pool *pgxpool.Pool) bool {
	t.Helper()
	for start := time.Now(); time.Since(start) < 100*time.Millisecond; time.Sleep(2 * time.Millisecond) {
		var waits bool
		err := pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()
				AND query LIKE '%audex_wait_for_lock_holders(%' AND wait_event = 'PgSleep')`).Scan(&waits)
		if err != nil {
			t.Fatalf("read pg_stat_activity: %v", err)
		}
		if waits {
			return true
		}
	}
	return false
}

// IsolatedDatabaseURL creates a migrated database for this test alone,
// dropped when the test ends: for tests that run River, whose workers
// would otherwise take other tests' jobs.
func IsolatedDatabaseURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "iso_", true)
}

// IsolatedPool is a pool on a new IsolatedDatabaseURL, closed at the end
// of the test.
func IsolatedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	// Room for a worker's jobs and River's own connections, as the worker
	// process has (pgx's default of 4 starves a lease's renewal).
	p, err := store.Open(context.Background(), IsolatedDatabaseURL(t), store.MaxConns(16))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// EmptyDatabaseURL creates a database with no tables at all (as before
// `api migrate`) and returns its URL; it is dropped when the test ends.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "empty_", false)
}

// newDatabase creates a database named after kind, a clone of the
// migrated template when migrated, dropped when the test ends.
func newDatabase(t testing.TB, kind string, migrated bool) string {
	t.Helper()
	DatabaseURL(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, adminURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer admin.Close(ctx)
	name := DatabasePrefix + kind + randomHex(6)
	sql := "CREATE DATABASE " + name
	if migrated {
		template, err := ensureTemplate(ctx, admin)
		if err != nil {
			t.Fatalf("template: %v", err)
		}
		sql += " TEMPLATE " + template
	}
	if _, err := admin.Exec(ctx, sql); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if admin, err := pgx.Connect(ctx, adminURL()); err == nil {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close(ctx)
		}
	})
	return withDatabase(adminURL(), name)
}
