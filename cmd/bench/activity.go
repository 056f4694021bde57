package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// activityKey is one kind of database session state: which process, which
// statement, and what it was doing.
type activityKey struct {
	app       string // application_name: bench-api or bench-worker
	statement string // the statement's first words
	state     string // a wait event, "on CPU" or "idle in transaction"
}

// activity counts samples of the api's and worker's database sessions.
type activity struct {
	samples int // how many times pg_stat_activity was read
	counts  map[activityKey]int
}

// sampleActivity reads pg_stat_activity every 20 ms until stop is closed,
// and counts the sessions of the api and worker processes that are active
// or idle in a transaction, by statement and wait event. A session that is
// active without a wait event is counted as "on CPU" (or waiting for the
// CPU: the machine has two cores for everything).
func (b *bench) sampleActivity(ctx context.Context, stop <-chan struct{}) <-chan activity {
	out := make(chan activity, 1)
	go func() {
		a := activity{counts: map[activityKey]int{}}
		defer func() { out <- a }()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rows, err := b.pool.Query(ctx, `
				SELECT application_name, query, state, coalesce(wait_event_type || ': ' || wait_event, '')
				FROM pg_stat_activity
				WHERE datname = current_database() AND application_name LIKE 'bench-%'
				  AND state IN ('active', 'idle in transaction')`)
			if err != nil {
				return
			}
			var app, query, state, wait string
			_, err = pgx.ForEachRow(rows, []any{&app, &query, &state, &wait}, func() error {
				k := activityKey{app: app, statement: statementLabel(query), state: wait}
				switch {
				case state == "idle in transaction":
					k.state = "idle in transaction"
				case wait == "":
					k.state = "on CPU"
				}
				a.counts[k]++
				return nil
			})
			if err != nil {
				return
			}
			a.samples++
		}
	}()
	return out
}

var spaceRe = regexp.MustCompile(`\s+`)

// statementLabel is the first words of a statement, enough to tell the
// store's statements apart.
func statementLabel(query string) string {
	q := strings.TrimSpace(spaceRe.ReplaceAllString(query, " "))
	if len(q) > 60 {
		q = q[:60] + "…"
	}
	return strings.ReplaceAll(q, "|", `\|`)
}

// print writes the most frequent states (at most limit) as a table: the
// share of samples in which a session was in that state, so that 100%
// means one session in it all the time.
func (a activity) print(b *bench, limit int) {
	if a.samples == 0 {
		b.printf("(no samples)\n")
		return
	}
	keys := slices.SortedFunc(maps.Keys(a.counts), func(x, y activityKey) int {
		return cmp.Or(cmp.Compare(a.counts[y], a.counts[x]), cmp.Compare(x.app, y.app), cmp.Compare(x.statement, y.statement), cmp.Compare(x.state, y.state))
	})
	b.printf("| process | statement | state | share of %d samples |\n|---|---|---|---:|\n", a.samples)
	for i, k := range keys {
		if i == limit {
			rest := 0
			for _, k := range keys[limit:] {
				rest += a.counts[k]
			}
			b.printf("| | (%d other states) | | %s |\n", len(keys)-limit, share(rest, a.samples))
			break
		}
		b.printf("| %s | `%s` | %s | %s |\n", strings.TrimPrefix(k.app, "bench-"), k.statement, k.state, share(a.counts[k], a.samples))
	}
}

// printByClass writes, per process, the share of samples by class of
// state: on CPU, idle in transaction, or the wait event's type (Lock is a
// wait for another transaction's lock, LWLock for a shared structure, IO
// for the disk or the WAL).
func (a activity) printByClass(b *bench) {
	if a.samples == 0 {
		return
	}
	type class struct{ app, class string }
	counts := map[class]int{}
	for k, n := range a.counts {
		c, _, _ := strings.Cut(k.state, ":")
		counts[class{strings.TrimPrefix(k.app, "bench-"), c}] += n
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(x, y class) int {
		return cmp.Or(cmp.Compare(x.app, y.app), cmp.Compare(counts[y], counts[x]), cmp.Compare(x.class, y.class))
	})
	var parts []string
	app := ""
	for _, k := range keys {
		if k.app != app {
			if app != "" {
				b.printf("%s; ", strings.Join(parts, ", "))
			}
			app, parts = k.app, nil
			b.printf("%s: ", app)
		}
		parts = append(parts, fmt.Sprintf("%s %s", k.class, share(counts[k], a.samples)))
	}
	b.printf("%s.\n", strings.Join(parts, ", "))
}

func share(n, of int) string {
	return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(of))
}
