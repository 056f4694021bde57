// Package walltest runs a hostile tenant beside a well-behaved one against
// a running audex and reports what the well-behaved one saw: the check
// that tenants are walls under load too (docs/api.md), shared by a test and by
// `make load`. The hostile tenant sends huge summaries, downloads that it
// never reads and a flood of exports, all at once, with nothing but its
// own keys; the other tenant lists, ingests, summarises, reads filters and
// exports meanwhile, and /readyz is polled. It talks to the API over HTTP
// only and imports nothing of audex but the domain types.
package walltest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/audex-dev/audex"
)

// Config is one run.
type Config struct {
	// URL is the API's base URL (on loopback).
	URL string
	// HostileKey and VictimKey are keys of two tenants, each with the
	// scopes read, write and export.
	HostileKey, VictimKey string
	// Duration is how long the hostile tenant keeps at it.
	Duration time.Duration
	// Summaries and StalledDownloads are how many of each the hostile
	// tenant keeps going at once (default 4 each).
	Summaries, StalledDownloads int
	// Since and Until bound the exports and downloads; the hostile
	// tenant's events there make its downloads big.
	Since, Until time.Time
	// Destination names the exports' destination; PartMaxRecords is the
	// smallest part the server allows (the flood asks for it).
	Destination    string
	PartMaxRecords int
	// VictimExports is how many exports the other tenant creates, spread
	// over the run (default 3).
	VictimExports int
}

// Latencies are the answers of one kind of request of the other tenant.
type Latencies struct {
	Took     []time.Duration
	Statuses map[int]int
}

// Report is what a run saw.
type Report struct {
	// Victim holds the other tenant's requests by kind: list, ingest,
	// summary, filters, readyz (the last without a key).
	Victim map[string]*Latencies
	// VictimExportStarts is, for each of the other tenant's exports, how
	// long it stayed queued (-1: it never started during the run).
	VictimExportStarts []time.Duration
	// VictimExports and HostileExports are the ids of the exports created.
	VictimExports, HostileExports []string
	// Hostile counts the hostile tenant's answers by kind and status.
	Hostile map[string]map[int]int
	// IngestedIDs are the ids of the other tenant's acknowledged events.
	IngestedIDs []string
	mu          sync.Mutex
}

// Victim kinds of request.
const (
	KindList    = "list"
	KindIngest  = "ingest"
	KindSummary = "summary"
	KindFilters = "filters"
	KindReadyz  = "readyz"
)

// Failures lists what broke the walls: another tenant's request that took
// longer than maxLatency or was not answered 2xx, an export of it that
// waited longer than maxExportStart, a /readyz that was not 200.
func (r *Report) Failures(maxLatency, maxExportStart time.Duration) []string {
	var out []string
	for _, kind := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Victim {
			if !yield(k) {
				return
			}
		}
	}) {
		l := r.Victim[kind]
		if len(l.Took) == 0 {
			out = append(out, kind+": no request answered")
			continue
		}
		if worst := slices.Max(l.Took); worst > maxLatency {
			out = append(out, fmt.Sprintf("%s: the slowest of %d answers took %s, over %s", kind, len(l.Took), worst.Round(time.Millisecond), maxLatency))
		}
		for status, n := range l.Statuses {
			if status < 200 || status > 299 {
				out = append(out, fmt.Sprintf("%s: %d answers %d", kind, n, status))
			}
		}
	}
	for i, d := range r.VictimExportStarts {
		if d < 0 || d > maxExportStart {
			out = append(out, fmt.Sprintf("export %s of the other tenant waited %s to start, over %s", r.VictimExports[i], d.Round(time.Millisecond), maxExportStart))
		}
	}
	return out
}

// Run runs the two tenants for cfg.Duration and returns what it saw. It
// stops everything it started before it returns.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Summaries == 0 {
		cfg.Summaries = 4
	}
	if cfg.StalledDownloads == 0 {
		cfg.StalledDownloads = 4
	}
	if cfg.VictimExports == 0 {
		cfg.VictimExports = 3
	}
	r := &Report{Victim: map[string]*Latencies{}, Hostile: map[string]map[int]int{}}
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	h := &hostile{cfg: cfg, report: r}
	for range cfg.Summaries {
		wg.Go(func() { h.summaries(runCtx) })
	}
	for range cfg.StalledDownloads {
		wg.Go(func() { h.stalledDownloads(runCtx) })
	}
	wg.Go(func() { h.exportFlood(runCtx) })
	// The hostile tenant gets going before the other one starts.
	if !sleep(runCtx, min(2*time.Second, cfg.Duration/10)) {
		wg.Wait()
		return r, ctx.Err()
	}
	v := &victim{cfg: cfg, report: r}
	wg.Go(func() { v.requests(runCtx) })
	wg.Go(func() { v.readyz(runCtx) })
	wg.Go(func() { v.exports(runCtx) })
	wg.Wait()
	return r, ctx.Err()
}

// client makes the short requests of both tenants.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

// call sends one request and returns its status (0: no answer), answer
// and time taken.
func call(ctx context.Context, method, url, key string, body any) (int, []byte, time.Duration) {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, 0
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, time.Since(start)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	took := time.Since(start)
	if err != nil {
		return 0, nil, took
	}
	return res.StatusCode, answer, took
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// hostile is the tenant that tries to stall the others.
type hostile struct {
	cfg    Config
	report *Report
}

func (h *hostile) count(kind string, status int) {
	h.report.mu.Lock()
	defer h.report.mu.Unlock()
	if h.report.Hostile[kind] == nil {
		h.report.Hostile[kind] = map[int]int{}
	}
	h.report.Hostile[kind][status]++
}

// summaries asks, one after the other, for summaries of every day of ten
// thousand years, with and without a filter (a filter scans the events).
func (h *hostile) summaries(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		q := "?since=0001-01-01&until=9999-12-31T23:59:59Z"
		if i%2 == 1 {
			q += "&action_prefix=a"
		}
		status, _, _ := call(ctx, "GET", h.cfg.URL+"/v1/audit/summary"+q, h.cfg.HostileKey, nil)
		if ctx.Err() == nil {
			h.count("summary", status)
		}
		if status == http.StatusTooManyRequests {
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// stalledDownloads keeps a download going whose body it never reads, on
// a socket with a small receive buffer; when the server cuts it off, or
// refuses it, it starts another.
func (h *hostile) stalledDownloads(ctx context.Context) {
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	transport := &http.Transport{DialContext: dialer.DialContext, DisableCompression: true, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	body, _ := json.Marshal(map[string]any{"format": "ndjson", "since": h.cfg.Since, "until": h.cfg.Until})
	for ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, "POST", h.cfg.URL+"/v1/audit/export", bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+h.cfg.HostileKey)
		req.Header.Set("Content-Type", "application/json")
		res, err := transport.RoundTrip(req)
		if err != nil {
			if ctx.Err() == nil {
				h.count("download", 0)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		h.count("download", res.StatusCode)
		if res.StatusCode != http.StatusOK {
			res.Body.Close()
			sleep(ctx, 200*time.Millisecond)
			continue
		}
		// Read nothing until the server gives up on this client: then a
		// one-byte read fails or ends at once.
		h.waitCutOff(ctx, res)
	}
}

// waitCutOff holds a download unread until ctx ends or the server has cut
// it off, which it learns by reading a byte every few seconds (too little
// to meet any minimum rate).
func (h *hostile) waitCutOff(ctx context.Context, res *http.Response) {
	defer res.Body.Close()
	one := make([]byte, 1)
	for sleep(ctx, 5*time.Second) {
		if _, err := res.Body.Read(one); err != nil {
			h.count("download_cut_off", 0)
			return
		}
	}
}

// exportFlood keeps creating exports with the smallest parts the server
// allows, as fast as it is answered, waiting out each 429.
func (h *hostile) exportFlood(ctx context.Context) {
	for ctx.Err() == nil {
		status, answer, _ := call(ctx, "POST", h.cfg.URL+"/v1/audit/exports", h.cfg.HostileKey, map[string]any{
			"since": h.cfg.Since, "until": h.cfg.Until, "format": "jsonl",
			"destination": map[string]any{"name": h.cfg.Destination}, "part_max_records": h.cfg.PartMaxRecords})
		if ctx.Err() != nil {
			return
		}
		h.count("export", status)
		if status == http.StatusAccepted {
			var created struct {
				ID string `json:"export_id"`
			}
			if json.Unmarshal(answer, &created) == nil {
				h.report.mu.Lock()
				h.report.HostileExports = append(h.report.HostileExports, created.ID)
				h.report.mu.Unlock()
			}
			continue
		}
		sleep(ctx, time.Second)
	}
}

// victim is the well-behaved tenant.
type victim struct {
	cfg    Config
	report *Report
}

func (v *victim) record(kind string, status int, took time.Duration) {
	v.report.mu.Lock()
	defer v.report.mu.Unlock()
	l := v.report.Victim[kind]
	if l == nil {
		l = &Latencies{Statuses: map[int]int{}}
		v.report.Victim[kind] = l
	}
	l.Took = append(l.Took, took)
	l.Statuses[status]++
}

// requests lists, ingests, summarises and reads filters in turn, one at a
// time, as a person at a console or a small service would.
func (v *victim) requests(ctx context.Context) {
	for n := 0; ; n++ {
		kind, method, path := KindList, "GET", "/v1/audit/events?limit=100"
		var body any
		switch n % 4 {
		case 1:
			kind, method, path = KindIngest, "POST", "/v1/audit/events"
			events := make([]map[string]any, 50)
			for i := range events {
				events[i] = map[string]any{"id": fmt.Sprintf("walltest-%06d-%02d", n, i), "action": "doc.read",
					"actor": map[string]any{"id": "alice", "type": "user"}}
			}
			body = map[string]any{"events": events}
		case 2:
			kind, path = KindSummary, "/v1/audit/summary"
		case 3:
			kind, path = KindFilters, "/v1/audit/filters"
		}
		status, answer, took := call(ctx, method, v.cfg.URL+path, v.cfg.VictimKey, body)
		if ctx.Err() != nil {
			return
		}
		v.record(kind, status, took)
		if kind == KindIngest && status == http.StatusCreated {
			var got struct {
				IDs []string `json:"ids"`
			}
			if json.Unmarshal(answer, &got) == nil {
				v.report.mu.Lock()
				v.report.IngestedIDs = append(v.report.IngestedIDs, got.IDs...)
				v.report.mu.Unlock()
			}
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// readyz polls /readyz twice a second.
func (v *victim) readyz(ctx context.Context) {
	for sleep(ctx, 500*time.Millisecond) {
		status, _, took := call(ctx, "GET", v.cfg.URL+"/readyz", "", nil)
		if ctx.Err() == nil {
			v.record(KindReadyz, status, took)
		}
	}
}

// exports creates the other tenant's exports spread over the run and
// measures how long each stays queued.
func (v *victim) exports(ctx context.Context) {
	every := v.cfg.Duration / time.Duration(v.cfg.VictimExports+1)
	for range v.cfg.VictimExports {
		if !sleep(ctx, every/2) {
			return
		}
		status, answer, _ := call(ctx, "POST", v.cfg.URL+"/v1/audit/exports", v.cfg.VictimKey, map[string]any{
			"since": v.cfg.Since, "until": v.cfg.Until, "format": "csv", "destination": map[string]any{"name": v.cfg.Destination}})
		if ctx.Err() != nil {
			return
		}
		var created struct {
			ID string `json:"export_id"`
		}
		if status != http.StatusAccepted || json.Unmarshal(answer, &created) != nil {
			v.record("export_create", status, 0)
			continue
		}
		start := time.Now()
		waited := time.Duration(-1)
		for sleep(ctx, 100*time.Millisecond) {
			status, answer, _ := call(ctx, "GET", v.cfg.URL+"/v1/audit/exports/"+created.ID, v.cfg.VictimKey, nil)
			var e audex.Export
			if status == http.StatusOK && json.Unmarshal(answer, &e) == nil && e.Status != audex.ExportQueued {
				waited = time.Since(start)
				break
			}
		}
		v.report.mu.Lock()
		v.report.VictimExports = append(v.report.VictimExports, created.ID)
		v.report.VictimExportStarts = append(v.report.VictimExportStarts, waited)
		v.report.mu.Unlock()
		sleep(ctx, every/2)
	}
}

// Summary is a line per kind of the other tenant's requests: count,
// p50, p99 and max, for a report.
func (r *Report) Summary() []string {
	var lines []string
	for _, kind := range []string{KindList, KindIngest, KindSummary, KindFilters, KindReadyz} {
		l := r.Victim[kind]
		if l == nil || len(l.Took) == 0 {
			continue
		}
		sorted := slices.Sorted(slices.Values(l.Took))
		pct := func(p float64) time.Duration { return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))] }
		var statuses []string
		for _, s := range slices.Sorted(func(yield func(int) bool) {
			for s := range l.Statuses {
				if !yield(s) {
					return
				}
			}
		}) {
			statuses = append(statuses, fmt.Sprintf("%d: %d", s, l.Statuses[s]))
		}
		lines = append(lines, fmt.Sprintf("| %s | %d | %s | %s | %s | %s |", kind, len(sorted),
			ms(pct(0.5)), ms(pct(0.99)), ms(sorted[len(sorted)-1]), strings.Join(statuses, ", ")))
	}
	return lines
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
