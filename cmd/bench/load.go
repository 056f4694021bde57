package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex/internal/store"
)

// loadDays is how far back the loaded events go.
const loadDays = 30

// loadChunk is how many events one load transaction copies.
const loadChunk = 25_000

// tenantLoad is one tenant of the load and how many events it gets.
type tenantLoad struct {
	name   string
	events int
	gen    *generator
	left   int
}

// loadStats counts the big tenant's values, to choose common and rare
// filter values for the list benchmark.
type loadStats struct {
	end          time.Time // the load's "now": the newest events are just before it
	events       int       // of the big tenant
	actors       map[string]int
	actorTypes   map[string]int
	actions      map[string]int
	actorActions map[[2]string]int
	targets      map[string]int
	targetTypes  map[string]int
	projects     map[string]int // by "projects/pN/"
	ips          map[string]int
	requestID    string // of the event in the middle of the tenant
}

func (s *loadStats) observe(e *event, i, n int) {
	s.actors[e.actorID]++
	s.actorTypes[e.actorType]++
	s.actions[e.action]++
	s.actorActions[[2]string{e.actorID, e.action}]++
	if e.targetType != "" {
		s.targets[e.targetID]++
		s.targetTypes[e.targetType]++
	}
	if rest, ok := strings.CutPrefix(e.resource, "projects/"); ok {
		p, _, _ := strings.Cut(rest, "/")
		s.projects["projects/"+p+"/"]++
	}
	s.ips[e.sourceIP.String()]++
	if i == n/2 {
		s.requestID = e.requestID
	}
}

// loadResult is what the load phase reports.
type loadResult struct {
	stats                    *loadStats
	tenants                  []tenantLoad
	total                    int
	copyTime, vacuumTime     time.Duration
	valuesTime               time.Duration
	eventsHeap, eventsIndex  int64
	eventIDsHeap, eventIDsIx int64
}

// chunk is one load transaction's rows.
type chunk struct {
	events, ids [][]any
}

// load fills the database: the big tenant and nine small ones, their
// events interleaved in time order over the last loadDays days as a live
// system would have received them, with COPY into events and event_ids in
// one transaction per chunk (so the two always agree, as after
// InsertEvents). Then VACUUM (ANALYZE), which autovacuum would otherwise
// start in the middle of the measurements, and the event_values counts
// that InsertEvents keeps.
func (b *bench) load(ctx context.Context) (loadResult, error) {
	n := b.cfg.events
	tenants := []tenantLoad{{name: bigTenant, events: n}}
	small := n / 10
	weights, sum := make([]float64, 9), 0.0
	for i := range weights {
		weights[i] = 1 / float64(i+1)
		sum += weights[i]
	}
	for i, w := range weights {
		tenants = append(tenants, tenantLoad{name: fmt.Sprintf("bench_small_%d", i+1), events: max(1, int(float64(small)*w/sum))})
	}
	total := 0
	for i := range tenants {
		t := &tenants[i]
		t.gen = newGenerator(b.cfg.seed, uint64(i+1), populationFor(t.events))
		t.left = t.events
		total += t.events
	}
	end := time.Now().UTC().Truncate(time.Second)
	stats := &loadStats{
		end: end, events: n, actors: map[string]int{}, actorTypes: map[string]int{}, actions: map[string]int{},
		actorActions: map[[2]string]int{}, targets: map[string]int{}, targetTypes: map[string]int{},
		projects: map[string]int{}, ips: map[string]int{},
	}
	tl := newTimeline(end.AddDate(0, 0, -loadDays), end, total)
	b.logger.Info("loading", slog.Int("events", total), slog.Int("tenants", len(tenants)))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	start := time.Now()
	for range 2 { // one COPY stream per core of the benchmark machine
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, copyColumns, pgx.CopyFromRows(c.events)); err != nil {
						return fmt.Errorf("copy events: %w", err)
					}
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_ids"}, []string{"tenant_id", "id", "occurred_at"}, pgx.CopyFromRows(c.ids)); err != nil {
						return fmt.Errorf("copy event_ids: %w", err)
					}
					return nil
				})
				if err != nil {
					fail(fmt.Errorf("load: %w", err))
					return
				}
			}
		}()
	}

	// Each event goes to a tenant drawn in proportion to the events it has
	// left, so every tenant gets exactly its share, spread over the month.
	rng := rand.New(rand.NewPCG(b.cfg.seed, 0))
	bigSeen, left := 0, total
	c := chunk{}
	next := time.Now()
generate:
	for i := range total {
		r := rng.IntN(left)
		t := &tenants[0]
		for j := range tenants {
			if r < tenants[j].left {
				t = &tenants[j]
				break
			}
			r -= tenants[j].left
		}
		t.left--
		left--
		e := t.gen.next(tl.at(i))
		if t.name == bigTenant {
			stats.observe(&e, bigSeen, n)
			bigSeen++
		}
		c.events = append(c.events, e.copyRow(t.name))
		c.ids = append(c.ids, []any{t.name, e.id, e.occurredAt})
		if len(c.events) == loadChunk || i == total-1 {
			select {
			case chunks <- c:
			case <-ctx.Done():
				break generate
			}
			c = chunk{}
			if time.Now().After(next) {
				b.logger.Info("loading", slog.Int("generated", i+1), slog.Int("of", total))
				next = time.Now().Add(10 * time.Second)
			}
		}
	}
	close(chunks)
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return loadResult{}, fmt.Errorf("load: %w", err)
	}
	res := loadResult{stats: stats, tenants: tenants, total: total, copyTime: time.Since(start)}
	b.logger.Info("loaded", slog.Int("events", total), slog.Duration("took", res.copyTime))

	// The filter values that InsertEvents would have counted.
	start = time.Now()
	for _, t := range tenants {
		if err := store.RecountEventValues(ctx, b.pool, t.name); err != nil {
			return res, err
		}
	}
	res.valuesTime = time.Since(start)
	if err := b.checkLoad(ctx, tenants); err != nil {
		return res, err
	}
	err := b.pool.QueryRow(ctx, `
		SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)),
		       pg_table_size('event_ids'), pg_indexes_size('event_ids')
		FROM pg_partition_tree('events') WHERE isleaf`).
		Scan(&res.eventsHeap, &res.eventsIndex, &res.eventIDsHeap, &res.eventIDsIx)
	if err != nil {
		return res, fmt.Errorf("measure table sizes: %w", err)
	}
	return res, nil
}

// checkLoad verifies that every loaded tenant has its events, each with
// its event_ids row and counted once in event_values by action. The
// audit.key_created event of the read key is the one event that the load
// itself did not write.
func (b *bench) checkLoad(ctx context.Context, tenants []tenantLoad) error {
	counts := map[string][3]int64{}
	for i, query := range []string{
		`SELECT tenant_id, count(*) FROM events GROUP BY tenant_id`,
		`SELECT tenant_id, count(*) FROM event_ids GROUP BY tenant_id`,
		`SELECT tenant_id, sum(events)::bigint FROM event_values WHERE kind = 'action' GROUP BY tenant_id`,
	} {
		rows, err := b.pool.Query(ctx, query)
		if err != nil {
			return fmt.Errorf("check load: %w", err)
		}
		var tenant string
		var count int64
		_, err = pgx.ForEachRow(rows, []any{&tenant, &count}, func() error {
			c := counts[tenant]
			c[i] = count
			counts[tenant] = c
			return nil
		})
		if err != nil {
			return fmt.Errorf("check load: %w", err)
		}
	}
	for _, t := range tenants {
		want := int64(t.events)
		if t.name == bigTenant {
			want++ // audit.key_created
		}
		if c := counts[t.name]; c[0] != want || c[1] != want || c[2] != want {
			return fmt.Errorf("check load: tenant %s has %d events, %d event_ids rows and %d counted in event_values, want %d",
				t.name, c[0], c[1], c[2], want)
		}
	}
	return nil
}

func (b *bench) printLoad(ld loadResult) {
	mib := func(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
	b.printf("\n## Load\n\n")
	b.printf("%s events in %d tenants (%s in %s, the rest in %d smaller tenants), %d days ending at the start of the run.\n\n",
		thousands(int64(ld.total)), len(ld.tenants), thousands(int64(ld.tenants[0].events)), bigTenant, len(ld.tenants)-1, loadDays)
	b.printf("| step | rows | seconds | rows/s |\n|---|---:|---:|---:|\n")
	b.printf("| COPY into events + event_ids (2 streams, %s-row transactions, all indexes in place) | %s | %.1f | %s |\n",
		thousands(loadChunk), thousands(int64(ld.total)), ld.copyTime.Seconds(), thousands(int64(float64(ld.total)/ld.copyTime.Seconds())))
	b.printf("| VACUUM (ANALYZE) events, event_ids | | %.1f | |\n", ld.vacuumTime.Seconds())
	b.printf("| event_values counts (store.RecountEventValues per tenant) | | %.1f | |\n", ld.valuesTime.Seconds())
	b.printf("\nSize after load: events %s of tables + %s of indexes; event_ids %s + %s.\n",
		mib(ld.eventsHeap), mib(ld.eventsIndex), mib(ld.eventIDsHeap), mib(ld.eventIDsIx))
}

// loadTenant loads n events of one tenant over the loadDays days before
// end, as the main load does (COPY into events and event_ids on two
// connections, loadChunk events per transaction) but not interleaved with
// other tenants: its rows lie together in the heap. Then it sets the
// tenant's event_values counts. salt picks the generator's stream. The
// caller runs VACUUM (ANALYZE) (vacuumAnalyze) before measuring.
func (b *bench) loadTenant(ctx context.Context, tenant string, n int, salt uint64, end time.Time) (time.Duration, error) {
	gen := newGenerator(b.cfg.seed, salt, populationFor(n))
	tl := newTimeline(end.AddDate(0, 0, -loadDays), end, n)
	b.logger.Info("loading", slog.String("tenant", tenant), slog.Int("events", n))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2)
	errs := make(chan error, 2)
	start := time.Now()
	for range 2 {
		go func() {
			for c := range chunks {
				err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
					if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, copyColumns, pgx.CopyFromRows(c.events)); err != nil {
						return fmt.Errorf("copy events: %w", err)
					}
					_, err := tx.CopyFrom(ctx, pgx.Identifier{"event_ids"}, []string{"tenant_id", "id", "occurred_at"}, pgx.CopyFromRows(c.ids))
					return err
				})
				if err != nil {
					cancel()
					errs <- fmt.Errorf("load %s: %w", tenant, err)
					return
				}
			}
			errs <- nil
		}()
	}
	c := chunk{}
generate:
	for i := range n {
		e := gen.next(tl.at(i))
		c.events = append(c.events, e.copyRow(tenant))
		c.ids = append(c.ids, []any{tenant, e.id, e.occurredAt})
		if len(c.events) == loadChunk || i == n-1 {
			select {
			case chunks <- c:
			case <-ctx.Done():
				break generate
			}
			c = chunk{}
		}
	}
	close(chunks)
	var err error
	for range 2 {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := store.RecountEventValues(ctx, b.pool, tenant); err != nil {
		return took, err
	}
	b.logger.Info("loaded", slog.String("tenant", tenant), slog.Int("events", n), slog.Duration("took", took))
	return took, nil
}

// vacuumAnalyze runs VACUUM (ANALYZE) on events and event_ids, as after
// the main load: the statistics the planner needs, and the vacuum that
// autovacuum would otherwise start in the middle of a measurement.
func (b *bench) vacuumAnalyze(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := b.pool.Exec(ctx, `VACUUM (ANALYZE) events, event_ids`); err != nil {
		return 0, fmt.Errorf("vacuum: %w", err)
	}
	return time.Since(start), nil
}
