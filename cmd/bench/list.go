package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/store"
)

// listWarmup requests per shape are made before the timed ones.
const listWarmup = 5

// listShape is one list request to measure.
type listShape struct {
	name   string
	filter audex.Filter
	order  audex.Order
}

// listResult is the measurement of one shape.
type listResult struct {
	shape    listShape
	query    string // the query string, unescaped for reading
	matching int64  // events of the tenant that match the filter
	p50, p99 time.Duration
	plan     string // the plan in a few words
	sql      string // the statement that the store ran
	args     []any
}

// listShapes picks the filter values from the big tenant's counts: a
// common and a rare value where the plan may depend on it.
func listShapes(s *loadStats) []listShape {
	str := func(v string) *string { return &v }
	boolp := func(v bool) *bool { return &v }
	day := func(daysAgo int) (*time.Time, *time.Time) {
		since, until := s.end.AddDate(0, 0, -daysAgo), s.end.AddDate(0, 0, -daysAgo+1)
		return &since, &until
	}
	weekAgo := s.end.AddDate(0, 0, -7)

	topActor, rareActor := mostCommon(s.actors), nearest(s.actors, 10)
	topAction := mostCommon(s.actions)
	rareAction := rareActions[len(rareActions)-1].name
	// The busiest actor's most frequent action.
	byTopActor := map[string]int{}
	for k, n := range s.actorActions {
		if k[0] == topActor {
			byTopActor[k[1]] = n
		}
	}
	topActorAction := mostCommon(byTopActor)
	topIP, rareIP := netip.MustParseAddr(mostCommon(s.ips)), netip.MustParseAddr(nearest(s.ips, 5))
	rareNet := netip.PrefixFrom(rareIP, 24).Masked()
	officeNet := netip.MustParsePrefix("10.20.0.0/16")
	since1, until1 := day(10)

	// "Medium" values match about 0.3% of the tenant: for filters whose
	// index is not in time order, that is where neither walking the time
	// index nor sorting the index's matches is cheap.
	medium := max(1, s.events/300)
	rare := max(1, s.events/10_000) // 0.01%
	actionPrefixes, nets := map[string]int{}, map[string]int{}
	for a, n := range s.actions {
		p, _, _ := strings.Cut(a, ".")
		actionPrefixes[p+"."] += n
	}
	for ip, n := range s.ips {
		nets[netip.PrefixFrom(netip.MustParseAddr(ip), 23).Masked().String()] += n
	}
	mediumNet := netip.MustParsePrefix(nearest(nets, medium))

	return []listShape{
		{name: "no filter"},
		{name: "action (common)", filter: audex.Filter{Actions: []string{topAction}}},
		{name: "action (medium)", filter: audex.Filter{Actions: []string{nearest(s.actions, medium)}}},
		{name: "action (rare)", filter: audex.Filter{Actions: []string{rareAction}}},
		{name: "action, two values", filter: audex.Filter{Actions: []string{"document.deleted", "secret.rotated"}}},
		{name: "action_prefix (common)", filter: audex.Filter{ActionPrefix: str("document.")}},
		{name: "action_prefix (medium)", filter: audex.Filter{ActionPrefix: str(nearest(actionPrefixes, medium))}},
		{name: "action_prefix (rare)", filter: audex.Filter{ActionPrefix: str("sso.")}},
		{name: "actor_id (common)", filter: audex.Filter{ActorID: str(topActor)}},
		{name: "actor_id (rare)", filter: audex.Filter{ActorID: str(rareActor)}},
		{name: "actor_type", filter: audex.Filter{ActorType: str("api_key")}},
		{name: "target_id (common)", filter: audex.Filter{TargetID: str(mostCommon(s.targets))}},
		{name: "target_id (rare)", filter: audex.Filter{TargetID: str(nearest(s.targets, 3))}},
		{name: "target_type", filter: audex.Filter{TargetType: str("secret")}},
		{name: "target_type (medium)", filter: audex.Filter{TargetType: str(nearest(s.targetTypes, medium))}},
		{name: "target_type (rare)", filter: audex.Filter{TargetType: str(nearest(s.targetTypes, rare))}},
		{name: "resource_prefix (common project)", filter: audex.Filter{ResourcePrefix: str(mostCommon(s.projects))}},
		{name: "resource_prefix (medium project)", filter: audex.Filter{ResourcePrefix: str(nearest(s.projects, medium))}},
		{name: "resource_prefix (rare project)", filter: audex.Filter{ResourcePrefix: str(nearest(s.projects, 300))}},
		{name: "success=false", filter: audex.Filter{Success: boolp(false)}},
		{name: "source_ip exact (common)", filter: audex.Filter{SourceIP: ptr(netip.PrefixFrom(topIP, 32))}},
		{name: "source_ip exact (medium)", filter: audex.Filter{SourceIP: ptr(netip.PrefixFrom(netip.MustParseAddr(nearest(s.ips, medium)), 32))}},
		{name: "source_ip exact (rare)", filter: audex.Filter{SourceIP: ptr(netip.PrefixFrom(rareIP, 32))}},
		{name: "source_ip CIDR /16", filter: audex.Filter{SourceIP: &officeNet}},
		{name: "source_ip CIDR /23 (medium)", filter: audex.Filter{SourceIP: &mediumNet}},
		{name: "source_ip CIDR /24 (rare)", filter: audex.Filter{SourceIP: &rareNet}},
		{name: "request_id", filter: audex.Filter{RequestID: str(s.requestID)}},
		{name: "since/until, 1 day", filter: audex.Filter{Since: since1, Until: until1}},
		{name: "order=asc", order: audex.OrderAsc},
		{name: "actor (common) + action + 7 days", filter: audex.Filter{ActorID: str(topActor), Actions: []string{topActorAction}, Since: &weekAgo}},
		{name: "actor (common) + action (rare) + 7 days", filter: audex.Filter{ActorID: str(topActor), Actions: []string{rareAction}, Since: &weekAgo}},
		{name: "actor_type (common) + action (rare)", filter: audex.Filter{ActorType: str(mostCommon(s.actorTypes)), Actions: []string{rareAction}}},
		{name: "actor (rare) + action + 7 days", filter: audex.Filter{ActorID: str(rareActor), Actions: []string{topAction}, Since: &weekAgo}},
	}
}

// mostCommon returns the key with the highest count (the least key on a tie).
func mostCommon(m map[string]int) string {
	return bestKey(m, func(n int) int { return -n })
}

// nearest returns the key whose count is nearest to want.
func nearest(m map[string]int, want int) string {
	return bestKey(m, func(n int) int { return max(n-want, want-n) })
}

// bestKey returns the key whose count has the least score, the least key
// on a tie.
func bestKey(m map[string]int, score func(int) int) string {
	keys := slices.Sorted(maps.Keys(m))
	best := ""
	for i, k := range keys {
		if i == 0 || score(m[k]) < score(m[best]) {
			best = k
		}
	}
	return best
}

// filterQuery is the list query string that asks for f in order.
func filterQuery(f audex.Filter, order audex.Order) url.Values {
	q := url.Values{}
	set := func(name string, v *string) {
		if v != nil {
			q.Set(name, *v)
		}
	}
	if f.Since != nil {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if f.Until != nil {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(f.Actions) > 0 {
		q.Set("action", strings.Join(f.Actions, ","))
	}
	set("action_prefix", f.ActionPrefix)
	set("actor_id", f.ActorID)
	set("actor_type", f.ActorType)
	set("target_id", f.TargetID)
	set("target_type", f.TargetType)
	set("resource_prefix", f.ResourcePrefix)
	if f.Success != nil {
		q.Set("success", fmt.Sprint(*f.Success))
	}
	if f.SourceIP != nil {
		v := f.SourceIP.String()
		if f.SourceIP.IsSingleIP() {
			v = f.SourceIP.Addr().String()
		}
		q.Set("source_ip", v)
	}
	set("request_id", f.RequestID)
	if order != "" {
		q.Set("order", string(order))
	}
	return q
}

// recordingDB is the pool, remembering the last statement it ran, so that
// the benchmark can EXPLAIN exactly what the store sends.
type recordingDB struct {
	store.DBTX
	sql  string
	args []any
}

func (r *recordingDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.sql, r.args = sql, args
	return r.DBTX.Query(ctx, sql, args...)
}

// Begin records the statements of the transaction too (a read of the
// keys index runs in one of its own).
func (r *recordingDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := r.DBTX.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return recordingTx{tx, r}, nil
}

// recordingTx is a transaction of a recordingDB.
type recordingTx struct {
	pgx.Tx
	r *recordingDB
}

func (t recordingTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	t.r.sql, t.r.args = sql, args
	return t.Tx.Query(ctx, sql, args...)
}

// list measures the first page (100 events) of every shape through the
// HTTP API, one request at a time. Unless fresh, it waits for autovacuum
// to be done first; fresh measures right away, as a tenant would list
// right after a bulk ingest, before statistics are gathered.
func (b *bench) list(ctx context.Context, key string, stats *loadStats, fresh bool) ([]listResult, error) {
	if !fresh {
		b.waitQuiet(ctx)
	}
	var results []listResult
	for _, shape := range listShapes(stats) {
		r, err := b.measureList(ctx, key, shape)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", shape.name, err)
		}
		b.logger.Info("list_measured", slog.String("shape", shape.name), slog.Int64("matching", r.matching),
			slog.String("p50_ms", ms(r.p50)), slog.String("p99_ms", ms(r.p99)))
		results = append(results, r)
	}
	return results, nil
}

// listMissed measures the first page (100 events) of every shape on the
// tenant that the ingest rounds filled over HTTP after the statistics
// were gathered, right after those rounds, through the store
// (store.ListEvents, 101 rows, one call at a time): statistics that
// predate a tenant's bulk ingest say it holds next to nothing.
func (b *bench) listMissed(ctx context.Context, stats *loadStats) ([]listResult, error) {
	var results []listResult
	for _, shape := range listShapes(stats) {
		order := shape.order
		if order == "" {
			order = audex.OrderDesc
		}
		res := listResult{shape: shape}
		res.query, _ = url.QueryUnescape(filterQuery(shape.filter, shape.order).Encode())
		durations, err := timeCalls(listWarmup, b.cfg.listRequests, func(int) error {
			_, err := store.ListEvents(ctx, b.pool, ingestTenant, shape.filter, order, nil, 101)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", shape.name, err)
		}
		res.p50, res.p99 = percentile(durations, 0.5), percentile(durations, 0.99)
		b.logger.Info("list_measured", slog.String("tenant", ingestTenant), slog.String("shape", shape.name),
			slog.String("p50_ms", ms(res.p50)), slog.String("p99_ms", ms(res.p99)))
		results = append(results, res)
	}
	return results, nil
}

// printMissedLists prints listMissed's results.
func (b *bench) printMissedLists(results []listResult, events int) {
	b.printf("\n## List on a tenant that the statistics miss: first page of 100, right after the ingest rounds\n\n")
	b.printf("The tenant that the ingest rounds filled over HTTP (%s events, received now) after the statistics of the load were gathered, which say it holds next to nothing; measured right after the rounds, through the store (`store.ListEvents`, 101 rows), one call at a time: %d timed calls per row after %d warm-up ones. The shapes' values are the big tenant's (its time ranges hold none of these events).\n\n",
		thousands(int64(events)), b.cfg.listRequests, listWarmup)
	b.printf("| shape | query | p50 ms | p99 ms |\n|---|---|---:|---:|\n")
	for _, r := range results {
		q := r.query
		if q == "" {
			q = "(none)"
		}
		b.printf("| %s | `%s` | %s | %s |\n", r.shape.name, q, ms(r.p50), ms(r.p99))
	}
}

func (b *bench) measureList(ctx context.Context, key string, shape listShape) (listResult, error) {
	q := filterQuery(shape.filter, shape.order)
	target := b.baseURL + "/v1/audit/events?" + q.Encode()
	res := listResult{shape: shape}
	res.query, _ = url.QueryUnescape(q.Encode())

	// Check once, through the SDK, that the API answers what the store
	// gives for the same filter, which also captures the store's
	// statement.
	api, err := client.New(b.baseURL, key, client.WithHTTPClient(b.client), client.WithRetries(0, 0))
	if err != nil {
		return res, err
	}
	var page []string
	for e, err := range api.Events.ListQuery(ctx, q) {
		if err != nil {
			return res, err
		}
		if page = append(page, e.ID); len(page) == 100 {
			break // the first page
		}
	}
	order := shape.order
	if order == "" {
		order = audex.OrderDesc
	}
	rec := &recordingDB{DBTX: b.pool}
	want, err := store.ListEvents(ctx, rec, bigTenant, shape.filter, order, nil, 101)
	if err != nil {
		return res, err
	}
	want = want[:min(len(want), 100)]
	if len(want) != len(page) {
		return res, fmt.Errorf("the API returned %d events and the store %d: the shape's query string and filter disagree", len(page), len(want))
	}
	for i := range want {
		if want[i].ID != page[i] {
			return res, fmt.Errorf("the API and the store disagree at event %d", i)
		}
	}
	res.sql, res.args = rec.sql, rec.args

	// The timed requests read the answer without decoding it, as the
	// figures always have: the SDK's decoding would be timed too.
	durations, err := timeCalls(listWarmup, b.cfg.listRequests, func(int) error {
		_, err := b.get(ctx, target, key)
		return err
	})
	if err != nil {
		return res, err
	}
	res.p50, res.p99 = percentile(durations, 0.5), percentile(durations, 0.99)

	if res.matching, err = store.CountEvents(ctx, b.pool, bigTenant, shape.filter); err != nil {
		return res, fmt.Errorf("count matching: %w", err)
	}
	plan, err := b.explain(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ", res.sql, res.args)
	if err != nil {
		return res, err
	}
	res.plan = summarisePlan(plan)
	return res, nil
}

// get fetches url with the API key and returns the body of a 200 answer.
func (b *bench) get(ctx context.Context, url, key string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.300s", req.URL.RequestURI(), resp.Status, body)
	}
	return body, nil
}

// explain runs prefix+sql (an EXPLAIN) with args and returns the plan.
func (b *bench) explain(ctx context.Context, prefix, sql string, args []any) (string, error) {
	rows, err := b.pool.Query(ctx, prefix+sql, args...)
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("explain: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}

var (
	planIndexRe   = regexp.MustCompile(`^(Index Scan Backward|Index Scan|Index Only Scan Backward|Index Only Scan|Bitmap Index Scan) (?:using|on) (\S+)`)
	planSeqScanRe = regexp.MustCompile(`^Seq Scan on `)
	planNodeRe    = regexp.MustCompile(`^(Sort|Incremental Sort|BitmapAnd|BitmapOr|Merge Append|Append) \(`)
	planRowsRe    = regexp.MustCompile(`\(actual rows=(\d+) `)
	planRemovedRe = regexp.MustCompile(`^Rows Removed by (?:Filter|Index Recheck): [1-9]`)
	partitionRe   = regexp.MustCompile(`^events_(\d{4}_\d{2}|default)_`)
)

// summarisePlan names, in order and once each, the plan's sorts and
// scans, an index by its columns after tenant_id. Sequential scans count
// only when they met rows: the planner scans empty partitions that way.
// plan is EXPLAIN ANALYZE text without costs.
func summarisePlan(plan string) string {
	type node struct {
		label string
		used  bool
	}
	var nodes []node
	for line := range strings.SplitSeq(plan, "\n") {
		line = strings.TrimLeft(strings.TrimSpace(line), "-> ")
		worked := false
		if m := planRowsRe.FindStringSubmatch(line); m != nil && m[1] != "0" {
			worked = true
		}
		switch {
		case planIndexRe.MatchString(line):
			m := planIndexRe.FindStringSubmatch(line)
			index := partitionRe.ReplaceAllString(m[2], "")
			index = strings.TrimSuffix(strings.TrimPrefix(index, "tenant_id_"), "_idx")
			index = strings.TrimSuffix(index, "_occurred_at_id")
			if index == "occurred_at_id" {
				index = "occurred_at"
			}
			kind := map[string]string{
				"Index Scan": "index", "Index Scan Backward": "index backward",
				"Index Only Scan": "index only", "Index Only Scan Backward": "index only backward",
				"Bitmap Index Scan": "bitmap",
			}[m[1]]
			nodes = append(nodes, node{kind + " (" + index + ")", true})
		case planSeqScanRe.MatchString(line):
			nodes = append(nodes, node{"seq scan", worked})
		case planNodeRe.MatchString(line):
			nodes = append(nodes, node{strings.ToLower(planNodeRe.FindStringSubmatch(line)[1]), true})
		case planRemovedRe.MatchString(line) && len(nodes) > 0:
			nodes[len(nodes)-1].used = true
		}
	}
	var parts []string
	for _, n := range nodes {
		if n.used && !slices.Contains(parts, n.label) {
			parts = append(parts, n.label)
		}
	}
	return strings.Join(parts, ", ")
}

func (b *bench) printList(results []listResult, fresh bool) {
	if fresh {
		b.printf("\n## List right after the load: first page of 100 on a tenant holding %s events, before any VACUUM (ANALYZE)\n\n", thousands(int64(b.cfg.events)))
		b.printf("Measured as soon as the load has committed, with no manual `VACUUM (ANALYZE)` (autovacuum, when the server runs it, may run meanwhile: see its setting above): the plans have no statistics of the new rows, as after a tenant's bulk ingest. ")
	} else {
		b.printf("\n## List: first page of 100 on a tenant holding %s events\n\n", thousands(int64(b.cfg.events)))
	}
	b.printf("GET /v1/audit/events over loopback HTTP with the key (auth, the store's query, JSON), one request at a time: %d timed requests per row after %d warm-up ones. \"matching\" counts the tenant's events that the filter selects.\n\n",
		b.cfg.listRequests, listWarmup)
	b.printf("| shape | query | matching | p50 ms | p99 ms | plan (index columns after tenant_id) |\n|---|---|---:|---:|---:|---|\n")
	for _, r := range results {
		q := r.query
		if q == "" {
			q = "(none)"
		}
		b.printf("| %s | `%s` | %s | %s | %s | %s |\n", r.shape.name, q, thousands(r.matching), ms(r.p50), ms(r.p99), r.plan)
	}
}

// printPlans prints EXPLAIN (ANALYZE, BUFFERS) of the slowest shape and of
// every other shape that misses the p99 target.
func (b *bench) printPlans(ctx context.Context, results []listResult) error {
	sorted := slices.Clone(results)
	slices.SortStableFunc(sorted, func(x, y listResult) int { return cmp.Compare(y.p99, x.p99) })
	for i, r := range sorted {
		if i > 0 && r.p99 < b.cfg.listTargetP99 || i >= 5 {
			break
		}
		plan, err := b.explain(ctx, "EXPLAIN (ANALYZE, BUFFERS) ", r.sql, r.args)
		if err != nil {
			return err
		}
		title := "Slowest list shape"
		if i > 0 {
			title = "Also over the p99 target"
		}
		b.printf("\n## %s: %s (p99 %s ms)\n\n", title, r.shape.name, ms(r.p99))
		b.printf("The store's statement, with its arguments:\n\n```sql\n%s\n", r.sql)
		for j, a := range r.args {
			b.printf("-- $%d = %v\n", j+1, formatArg(a))
		}
		b.printf("```\n\n```\n%s\n```\n", plan)
	}
	return nil
}

func formatArg(a any) string {
	switch v := a.(type) {
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case string:
		return "'" + v + "'"
	}
	return fmt.Sprint(a)
}
