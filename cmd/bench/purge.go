package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// The purge phase's tenants, and the salts of their generators: one purged
// alone, one purged while ingest runs into it.
const (
	purgeAloneTenant = "bench_purge_alone"
	purgeTenant      = "bench_purge"
	purgeAloneSalt   = 1900
	purgeSalt        = 2000
	purgeIdleSalt    = 2100
	purgeDuringSalt  = 2200
)

// purgeIngestClients post ingest requests around the purge;
// purgeIdleTime is how long they run without it: longer than the
// worker's summary rollup interval (30 s), so that the window without a
// purge holds a rollup of the ingested events as the window with one does.
const (
	purgeIngestClients = 2
	purgeIdleTime      = 40 * time.Second
)

// purgeBatchSize is the worker's batch (jobs.purgeBatchSize), for the
// EXPLAIN of one batch.
const purgeBatchSize = 5000

// ingestWindow is what the ingest clients did during one stretch.
type ingestWindow struct {
	latencies []time.Duration
	events    int
	elapsed   time.Duration
	activity  activity
}

func (w ingestWindow) perSecond() float64 { return float64(w.events) / w.elapsed.Seconds() }

// purgeRun is one timed purge.
type purgeRun struct {
	tenant  string
	deleted int64
	elapsed time.Duration // from sending the POST to seeing it completed (polled every 50 ms)
	working time.Duration // started_at to completed_at, by the database's clock
	worker  procDelta
}

func (r purgeRun) perSecond() float64 { return float64(r.deleted) / r.elapsed.Seconds() }

// purgeResult is the purge phase.
type purgeResult struct {
	loaded               int // events per tenant
	loadTime, vacuumTime time.Duration
	before               time.Time
	alone, withIngest    purgeRun
	vacuumAfter          time.Duration // VACUUM events, event_ids after the first purge
	idle, during         ingestWindow
	batch                []explainedStatement // the first batch's statements
	aloneActivity        activity
	deadAfter            int64
	retention            retentionDrop
}

// retentionDrop is a retention run that drops a whole monthly partition.
type retentionDrop struct {
	partition string
	deleted   int64
	took      time.Duration
}

// retentionTenant holds the events of the partition that retention drops.
const retentionTenant = "bench_retention"

// purge loads two tenants of their own, then measures a purge of all the
// loaded events of the first through the api and worker processes, and a
// purge of the second while ingest clients post new events to it, with the
// same ingest without a purge just before.
func (b *bench) purge(ctx context.Context, svc *services) (purgeResult, error) {
	end := time.Now().UTC().Truncate(time.Second)
	res := purgeResult{loaded: b.cfg.purgeEvents, before: end}
	for _, t := range []struct {
		name string
		salt uint64
	}{{purgeAloneTenant, purgeAloneSalt}, {purgeTenant, purgeSalt}} {
		took, err := b.loadTenant(ctx, t.name, res.loaded, t.salt, end)
		if err != nil {
			return res, err
		}
		res.loadTime += took
	}
	var err error
	if res.vacuumTime, err = b.vacuumAnalyze(ctx); err != nil {
		return res, err
	}
	// The worker would roll the loaded events into the summary's daily
	// counts within 30 s; done here, so that the rollup does not run in
	// the middle of the purge measured alone.
	if _, err := store.RollUpAllSummaries(ctx, b.pool, 500_000); err != nil {
		return res, err
	}
	// The keys' audit events occur after the cut-off, so the purges delete
	// exactly the loaded events.
	aloneKey, err := b.newKey(ctx, purgeAloneTenant, audex.ScopeAdmin)
	if err != nil {
		return res, err
	}
	adminKey, err := b.newKey(ctx, purgeTenant, audex.ScopeAdmin)
	if err != nil {
		return res, err
	}
	writeKey, err := b.newKey(ctx, purgeTenant, audex.ScopeWrite)
	if err != nil {
		return res, err
	}
	if err := b.explainPurgeBatch(ctx, &res); err != nil {
		return res, err
	}

	b.waitQuiet(ctx)
	b.logger.Info("purging", slog.String("tenant", purgeAloneTenant), slog.Int("events", res.loaded))
	stopSampling := make(chan struct{})
	sampled := b.sampleActivity(ctx, stopSampling)
	res.alone, err = b.runPurge(ctx, svc, aloneKey, purgeAloneTenant, res.before, res.loaded)
	close(stopSampling)
	res.aloneActivity = <-sampled
	if err != nil {
		return res, err
	}
	// What the purge leaves behind: dead rows, which autovacuum would
	// otherwise clean up in the middle of the next measurements.
	err = b.pool.QueryRow(ctx, `SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables WHERE relname LIKE 'event%'`).Scan(&res.deadAfter)
	if err != nil {
		return res, fmt.Errorf("count dead rows: %w", err)
	}
	start := time.Now()
	if _, err := b.pool.Exec(ctx, `VACUUM events, event_ids`); err != nil {
		return res, fmt.Errorf("vacuum: %w", err)
	}
	res.vacuumAfter = time.Since(start)

	b.waitQuiet(ctx)
	b.logger.Info("ingesting_without_purge", slog.Duration("for", purgeIdleTime))
	if res.idle, err = b.ingestLoad(ctx, svc, writeKey, purgeIdleSalt, purgeIdleTime, nil); err != nil {
		return res, err
	}

	b.waitQuiet(ctx)
	b.logger.Info("purging_with_ingest", slog.String("tenant", purgeTenant), slog.Int("events", res.loaded))
	stop := make(chan struct{})
	ingested := make(chan error, 1)
	go func() {
		var err error
		res.during, err = b.ingestLoad(ctx, svc, writeKey, purgeDuringSalt, 0, stop)
		ingested <- err
	}()
	res.withIngest, err = b.runPurge(ctx, svc, adminKey, purgeTenant, res.before, res.loaded)
	close(stop)
	if ingestErr := <-ingested; err == nil {
		err = ingestErr
	}
	if err != nil {
		return res, err
	}
	res.retention, err = b.retentionDrop(ctx, res.loaded)
	return res, err
}

// retentionDrop loads n events into January two years ago, a month of
// their own, gives their tenant a policy of 365 days, and times the first
// step of a retention run (store.DropExpiredPartitions, as the worker's
// retention job calls it), which drops that partition whole.
func (b *bench) retentionDrop(ctx context.Context, n int) (retentionDrop, error) {
	var r retentionDrop
	month := time.Date(time.Now().Year()-2, time.January, 1, 0, 0, 0, 0, time.UTC)
	if err := store.EnsureEventPartitions(ctx, b.pool, month); err != nil {
		return r, err
	}
	if _, err := b.loadTenant(ctx, retentionTenant, n, purgeAloneSalt+1, month.AddDate(0, 0, loadDays)); err != nil {
		return r, err
	}
	if _, err := b.pool.Exec(ctx, `INSERT INTO tenants (id, retain_days) VALUES ($1, 365)
		ON CONFLICT (id) DO UPDATE SET retain_days = 365`, retentionTenant); err != nil {
		return r, fmt.Errorf("retention policy: %w", err)
	}
	if _, err := store.RollUpAllSummaries(ctx, b.pool, 500_000); err != nil {
		return r, err
	}
	b.waitQuiet(ctx)
	b.logger.Info("dropping_expired_partition", slog.Int("events", n))
	start := time.Now()
	dropped, err := store.DropExpiredPartitions(ctx, b.pool, time.Now())
	r.took = time.Since(start)
	if err != nil {
		return r, err
	}
	for _, d := range dropped {
		r.partition = d.Name
		r.deleted += d.Deleted[retentionTenant]
	}
	if len(dropped) != 1 || r.deleted != int64(n) {
		return r, fmt.Errorf("retention dropped %d partitions holding %d events, want one of %d", len(dropped), r.deleted, n)
	}
	return r, nil
}

// runPurge purges the tenant's events before before through the api and
// waits for the worker to complete it; it must delete want events.
func (b *bench) runPurge(ctx context.Context, svc *services, key, tenant string, before time.Time, want int) (purgeRun, error) {
	r := purgeRun{tenant: tenant}
	watch, err := svc.worker.watch()
	if err != nil {
		return r, err
	}
	api := svc.client(key)
	start := time.Now()
	id, err := api.Purges.Create(ctx, before)
	var p audex.Purge
	if err == nil {
		p, err = waitPurge(ctx, api, id, 2*time.Minute+time.Duration(want/10_000)*time.Second)
	}
	r.elapsed = time.Since(start)
	r.worker = watch.end()
	if err != nil {
		return r, err
	}
	if p.Status != audex.PurgeCompleted {
		return r, fmt.Errorf("purge %s ended %s: %v", p.ID, p.Status, p.Error)
	}
	r.deleted = p.Deleted
	if p.StartedAt != nil && p.CompletedAt != nil {
		r.working = p.CompletedAt.Sub(*p.StartedAt)
	}
	if r.deleted != int64(want) {
		return r, fmt.Errorf("purge of %s deleted %d events, want %d", tenant, r.deleted, want)
	}
	b.logger.Info("purged", slog.String("tenant", tenant), slog.Int64("events", r.deleted), slog.Int("events_per_s", int(r.perSecond())))
	return r, nil
}

// ingestLoad posts ingest requests (cfg.ingestBatch new events each,
// occurring now) to the tenant of key with purgeIngestClients clients, at
// most cfg.purgeIngestRate events per second between them (a client whose
// request took longer than its interval sends the next one at once), for
// d or, when d is 0, until stop is closed.
func (b *bench) ingestLoad(ctx context.Context, svc *services, key string, salt uint64, d time.Duration, stop <-chan struct{}) (ingestWindow, error) {
	var (
		mu  sync.Mutex
		res ingestWindow
		wg  sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, purgeIngestClients)
	interval := time.Duration(0)
	if b.cfg.purgeIngestRate > 0 {
		interval = time.Duration(float64(purgeIngestClients*b.cfg.ingestBatch) / float64(b.cfg.purgeIngestRate) * float64(time.Second))
	}
	stopSampling := make(chan struct{})
	sampled := b.sampleActivity(ctx, stopSampling)
	start := time.Now()
	end := start.Add(d)
	over := func() bool {
		select {
		case <-stop:
			return true
		case <-ctx.Done():
			return true
		default:
			return d > 0 && time.Now().After(end)
		}
	}
	for c := range purgeIngestClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := newGenerator(b.cfg.seed, salt+uint64(c), populationFor(b.cfg.purgeEvents))
			next := start.Add(interval * time.Duration(c) / purgeIngestClients)
			for !over() {
				if wait := time.Until(next); wait > 0 {
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				next = next.Add(interval)
				if now := time.Now(); next.Before(now) {
					next = now
				}
				events := gen.batch(b.cfg.ingestBatch)
				body, err := ingestBody(events)
				if err != nil {
					errs <- err
					cancel()
					return
				}
				t := time.Now()
				if err := postEvents(ctx, apiHTTP, svc.apiURL, key, body, len(events)); err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("ingest: %w", err)
					}
					cancel()
					return
				}
				lat := time.Since(t)
				mu.Lock()
				res.latencies = append(res.latencies, lat)
				res.events += len(events)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	close(stopSampling)
	res.activity = <-sampled
	close(errs)
	if err, ok := <-errs; ok {
		return res, err
	}
	if len(res.latencies) == 0 {
		return res, errors.New("ingest: no request finished")
	}
	return res, nil
}

// errExplained ends a store function at its first statement that
// changes data, once that was EXPLAINed, so that its transaction rolls
// back.
var errExplained = errors.New("explained, rolled back")

// explainedStatement is one statement of a store function with its plan.
type explainedStatement struct {
	sql  string
	args []any
	plan string
}

// explainingDB runs the Queries of a store function's transaction under
// EXPLAIN (ANALYZE, BUFFERS): a SELECT is then run again for its rows, so
// that the function goes on; the first other statement (which EXPLAIN
// ANALYZE executed) fails with errExplained, so that the transaction rolls
// back and nothing changes.
type explainingDB struct {
	store.DBTX
	statements []explainedStatement
}

func (d *explainingDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := d.DBTX.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &explainingTx{Tx: tx, db: d}, nil
}

type explainingTx struct {
	pgx.Tx
	db *explainingDB
}

func (t *explainingTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.Tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	t.db.statements = append(t.db.statements, explainedStatement{sql: sql, args: args, plan: strings.Join(lines, "\n")})
	if strings.HasPrefix(strings.TrimSpace(sql), "SELECT") {
		return t.Tx.Query(ctx, sql, args...)
	}
	return nil, errExplained
}

// QueryRow explains as Query does.
func (t *explainingTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return firstRow{rows: rows, err: err}
}

// firstRow is the pgx.Row of the first of rows.
type firstRow struct {
	rows pgx.Rows
	err  error
}

func (r firstRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// explainPurgeBatch EXPLAINs the statements of the first batch that the
// purge of the first tenant will delete (store.PurgeBatch, rolled back).
func (b *bench) explainPurgeBatch(ctx context.Context, res *purgeResult) error {
	db := &explainingDB{DBTX: b.pool}
	_, _, err := store.PurgeBatch(ctx, db, audex.Purge{ID: "prg_bench_explain", TenantID: purgeAloneTenant, Before: res.before}, nil, purgeBatchSize, 0)
	if !errors.Is(err, errExplained) {
		return fmt.Errorf("explain a purge batch: %v", err)
	}
	res.batch = db.statements
	return nil
}

func (b *bench) printPurge(res purgeResult) {
	b.printf("\n## Purge: %s events of a tenant of their own\n\n", thousands(int64(res.loaded)))
	b.printf("`%s` and `%s` each hold %s events over the %d days before %s, loaded for this after the other phases (%.0f s of COPY for both, then %.0f s of VACUUM (ANALYZE)): one tenant after the other, so each tenant's rows lie together in the heap rather than interleaved with other tenants'. ",
		purgeAloneTenant, purgeTenant, thousands(int64(res.loaded)), loadDays, res.before.Format(time.RFC3339), res.loadTime.Seconds(), res.vacuumTime.Seconds())
	b.printf("Each purge is `POST /v1/audit/purge` with `before` %s (just after the tenant's last event) to the api process with an `audit:admin` key; the worker process deletes in batches of %s. ",
		res.before.Format(time.RFC3339), thousands(purgeBatchSize))
	b.printf("The first runs alone. During the second, %d ingest clients post %d-event requests (new events, after the cut-off) to the same tenant through the api process", purgeIngestClients, b.cfg.ingestBatch)
	if b.cfg.purgeIngestRate > 0 {
		b.printf(", each at most one request per %s ms (%s events/s offered in all)", ms(time.Duration(float64(purgeIngestClients*b.cfg.ingestBatch)/float64(b.cfg.purgeIngestRate)*float64(time.Second))), thousands(int64(b.cfg.purgeIngestRate)))
	} else {
		b.printf(", as fast as they go")
	}
	b.printf("; the same clients ran for %s without a purge just before it. Worker CPU is the worker process's user + system time from the POST to completed.\n\n", purgeIdleTime)
	b.printf("| purge | events | seconds, POST to completed (working) | events/s | worker CPU s |\n|---|---:|---:|---:|---:|\n")
	for _, r := range []struct {
		name string
		r    purgeRun
	}{{"alone", res.alone}, {"with ingest into the same tenant", res.withIngest}} {
		b.printf("| %s (`%s`) | %s | %.1f (%.1f) | %s | %.1f |\n", r.name, r.r.tenant, thousands(r.r.deleted), r.r.elapsed.Seconds(), r.r.working.Seconds(),
			thousands(int64(r.r.perSecond())), r.r.worker.cpu.Seconds())
	}
	b.printf("\nAfter the first purge the events tables held %s dead rows; `VACUUM events, event_ids` took %.1f s to clear them (batched deletes leave this to autovacuum; retention that drops whole monthly partitions is not measured here).\n",
		thousands(res.deadAfter), res.vacuumAfter.Seconds())
	b.printf("\n| ingest into %s | requests | events/s | p50 ms | p99 ms | slowest ms |\n|---|---:|---:|---:|---:|---:|\n", purgeTenant)
	windows := []struct {
		name string
		w    ingestWindow
	}{{"without a purge (" + purgeIdleTime.String() + ")", res.idle}, {"during the purge", res.during}}
	for _, w := range windows {
		b.printf("| %s | %d | %s | %s | %s | %s |\n", w.name, len(w.w.latencies), thousands(int64(w.w.perSecond())),
			ms(percentile(w.w.latencies, 0.5)), ms(percentile(w.w.latencies, 0.99)), ms(percentile(w.w.latencies, 1)))
	}
	if r := res.retention; r.partition != "" {
		b.printf("\nRetention dropping a whole partition: %s events of `%s` in `%s` (January two years ago, a month of their own), its tenant given a policy of 365 days; `store.DropExpiredPartitions` (the first step of the worker's retention job: detach, delete the `event_ids` rows, subtract `event_values`, complete the purge, drop the table) took %.2f s: **%s events/s**.\n",
			thousands(r.deleted), retentionTenant, r.partition, r.took.Seconds(), thousands(int64(float64(r.deleted)/r.took.Seconds())))
	}
	b.printf("\nWhat the api's and worker's database sessions were doing (pg_stat_activity every 20 ms; active or idle in a transaction; \"on CPU\" is active without a wait event, which on two shared cores includes waiting for a core):\n")
	b.printf("\nPurge alone. By class: ")
	res.aloneActivity.printByClass(b)
	b.printf("\n")
	res.aloneActivity.print(b, 8)
	for _, w := range windows {
		b.printf("\nIngest %s. By class: ", w.name)
		w.w.activity.printByClass(b)
		b.printf("\n")
		w.w.activity.print(b, 10)
	}
	b.printf("\n`EXPLAIN (ANALYZE, BUFFERS)` of the statements of the first batch of `%s` (store.PurgeBatch's, in a transaction rolled back), before the timed purges:\n", purgeAloneTenant)
	for _, st := range res.batch {
		b.printf("\n```sql\n%s\n", dedent(st.sql))
		for j, a := range st.args {
			b.printf("-- $%d = %s\n", j+1, formatExplainArg(a))
		}
		b.printf("```\n\n```\n%s\n```\n", st.plan)
	}
}

// formatExplainArg formats a statement's argument, an array by its length
// and first element.
func formatExplainArg(a any) string {
	switch v := a.(type) {
	case []time.Time:
		if len(v) > 0 {
			return fmt.Sprintf("%d timestamps from %s", len(v), formatArg(v[0]))
		}
	case []string:
		if len(v) > 0 {
			return fmt.Sprintf("%d strings from '%s'", len(v), v[0])
		}
	}
	return formatArg(a)
}
