package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// loadDays is how far back the loaded events go.
const loadDays = 30

// loadChunk is how many events one load transaction copies.
const loadChunk = 25_000

// tenantLoad is one tenant of a load, how many events it gets and the
// stream (salt) of its generator.
type tenantLoad struct {
	name   string
	events int
	salt   uint64
}

// loadStats counts the big tenant's values, to choose common and rare
// filter values for the list benchmark.
type loadStats struct {
	end          time.Time // the load's "now": the newest events are just before it
	events       int       // of the big tenant
	seen         int
	actors       map[string]int
	actions      map[string]int
	actorActions map[[2]string]int
	targets      map[string]int
	actorTypes   map[string]int
	targetTypes  map[string]int
	projects     map[string]int // by "projects/pN/"
	ips          map[string]int
	requestID    string // of the event in the middle of the tenant
}

func newLoadStats(end time.Time, events int) *loadStats {
	return &loadStats{
		end: end, events: events, actors: map[string]int{}, actions: map[string]int{},
		actorActions: map[[2]string]int{}, targets: map[string]int{}, actorTypes: map[string]int{}, targetTypes: map[string]int{},
		projects: map[string]int{}, ips: map[string]int{},
	}
}

func (s *loadStats) observe(e *audex.Event) {
	s.actors[e.Actor.ID]++
	s.actions[e.Action]++
	s.actorActions[[2]string{e.Actor.ID, e.Action}]++
	if e.Actor.Type != nil {
		s.actorTypes[*e.Actor.Type]++
	}
	if e.Target != nil {
		s.targets[*e.Target.ID]++
		if e.Target.Type != nil {
			s.targetTypes[*e.Target.Type]++
		}
	}
	if rest, ok := strings.CutPrefix(*e.Resource, "projects/"); ok {
		p, _, _ := strings.Cut(rest, "/")
		s.projects["projects/"+p+"/"]++
	}
	s.ips[*e.SourceIP]++
	if s.seen == s.events/2 {
		s.requestID = *e.RequestID
	}
	s.seen++
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

// load fills the database: the big tenant and nine small ones, their
// events interleaved in time order over the last loadDays days as a live
// system would have received them (loadTenants). Then the event_values
// counts that InsertEvents keeps, and a check of it all. The caller runs
// VACUUM (ANALYZE), which autovacuum would otherwise start in the middle
// of the measurements.
func (b *bench) load(ctx context.Context) (loadResult, error) {
	n := b.cfg.events
	tenants := []tenantLoad{{name: bigTenant, events: n, salt: 1}}
	small := n / 10
	weights, sum := make([]float64, 9), 0.0
	for i := range weights {
		weights[i] = 1 / float64(i+1)
		sum += weights[i]
	}
	for i, w := range weights {
		tenants = append(tenants, tenantLoad{name: fmt.Sprintf("bench_small_%d", i+1), events: max(1, int(float64(small)*w/sum)), salt: uint64(i + 2)})
	}
	res := loadResult{tenants: tenants}
	for _, t := range tenants {
		res.total += t.events
	}
	end := time.Now().UTC().Truncate(time.Second)
	res.stats = newLoadStats(end, n)
	var err error
	if res.copyTime, err = b.loadTenants(ctx, tenants, end, res.stats.observe); err != nil {
		return res, err
	}

	// The filter values that InsertEvents would have counted.
	start := time.Now()
	for _, t := range tenants {
		if err := store.RecountEventValues(ctx, b.pool, t.name); err != nil {
			return res, err
		}
	}
	res.valuesTime = time.Since(start)
	if err := b.checkLoad(ctx, tenants); err != nil {
		return res, err
	}
	err = b.pool.QueryRow(ctx, `
		SELECT sum(pg_table_size(relid)), sum(pg_indexes_size(relid)),
		       pg_table_size('event_ids'), pg_indexes_size('event_ids')
		FROM pg_partition_tree('events') WHERE isleaf`).
		Scan(&res.eventsHeap, &res.eventsIndex, &res.eventIDsHeap, &res.eventIDsIx)
	if err != nil {
		return res, fmt.Errorf("measure table sizes: %w", err)
	}
	return res, nil
}

// loadTenants loads the tenants' events over the loadDays days before end,
// interleaved in time order: each event goes to a tenant drawn in
// proportion to the events it has left, so every tenant gets exactly its
// share, spread over the month. The rows are the store's
// (store.EventCopyRow), COPYed into events and event_ids in one
// transaction per loadChunk events (store.CopyEvents, so both tables
// always agree, as after InsertEvents) on two connections while the next
// chunks are generated. observe, when not nil, sees every event of the
// first tenant in order. It returns how long that took; the event_values
// counts are the caller's to set (store.RecountEventValues).
func (b *bench) loadTenants(ctx context.Context, tenants []tenantLoad, end time.Time, observe func(*audex.Event)) (time.Duration, error) {
	total := 0
	gens, left := make([]*generator, len(tenants)), make([]int, len(tenants))
	for i, t := range tenants {
		gens[i], left[i] = newGenerator(b.cfg.seed, t.salt, populationFor(t.events)), t.events
		total += t.events
	}
	tl := newTimeline(end.AddDate(0, 0, -loadDays), end, total)
	b.logger.Info("loading", slog.Int("events", total), slog.Int("tenants", len(tenants)), slog.String("first", tenants[0].name))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan [][]any, 2)
	errs := make(chan error, 2)
	start := time.Now()
	for range 2 { // one COPY stream per core of the benchmark machine
		go func() {
			for rows := range chunks {
				if err := store.CopyEvents(ctx, b.pool, rows, true); err != nil {
					cancel()
					errs <- fmt.Errorf("load: %w", err)
					return
				}
			}
			errs <- nil
		}()
	}

	rng := rand.New(rand.NewPCG(b.cfg.seed, 0))
	var rows [][]any
	next := time.Now()
generate:
	for i := range total {
		r, t := rng.IntN(total-i), 0
		for r >= left[t] {
			r -= left[t]
			t++
		}
		left[t]--
		e := gens[t].next(tl.at(i))
		if t == 0 && observe != nil {
			observe(&e)
		}
		rows = append(rows, store.EventCopyRow(tenants[t].name, &e))
		if len(rows) == loadChunk || i == total-1 {
			select {
			case chunks <- rows:
			case <-ctx.Done():
				break generate
			}
			rows = nil
			if time.Now().After(next) {
				b.logger.Info("loading", slog.Int("generated", i+1), slog.Int("of", total))
				next = time.Now().Add(10 * time.Second)
			}
		}
	}
	close(chunks)
	err := errors.Join(<-errs, <-errs)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, err
	}
	took := time.Since(start)
	b.logger.Info("loaded", slog.Int("events", total), slog.Duration("took", took))
	return took, nil
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
// end, as the main load does but not interleaved with other tenants: its
// rows lie together in the heap. Then it sets the tenant's event_values
// counts. salt picks the generator's stream. The caller runs VACUUM
// (ANALYZE) (vacuumAnalyze) before measuring.
func (b *bench) loadTenant(ctx context.Context, tenant string, n int, salt uint64, end time.Time) (time.Duration, error) {
	took, err := b.loadTenants(ctx, []tenantLoad{{name: tenant, events: n, salt: salt}}, end, nil)
	if err != nil {
		return took, err
	}
	return took, store.RecountEventValues(ctx, b.pool, tenant)
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
