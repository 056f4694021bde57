package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Reads chooses where a read goes: a streaming replica of the primary
// that is up and at most MaxLag behind it, else the primary. Writes, job
// claims and ingest barriers never go through it. Replicas are checked
// in the background (Run); a read never waits for a check.
type Reads struct {
	primary  *pgxpool.Pool
	replicas []*replica
	maxLag   time.Duration
	logger   *slog.Logger
	next     atomic.Uint64
	// samples are the primary's WAL positions at the last checks, oldest
	// first.
	samplesMu sync.Mutex
	samples   []walSample
	// fallbacks counts reads that the primary served because no replica
	// could, by reason.
	fallbacks sync.Map // reason -> *atomic.Int64
}

// replica is one read replica and what its last check found.
type replica struct {
	name string // host:port/database, for logs and metrics: no secrets
	pool *pgxpool.Pool

	mu      sync.Mutex
	checked bool // a check has measured it
	usable  bool
	lag     time.Duration
	problem string // why it is not usable, for the log
}

// Why the primary served a read instead of a replica (Fallbacks).
const (
	FallbackNoReplica     = "no replica usable"
	FallbackReplicaBehind = "replica behind"
	FallbackReplicaFailed = "replica failed"
)

// replicaCheckEvery is how often Run checks each replica.
const replicaCheckEvery = time.Second

// replayPoll is how often a read that needs a replica to have replayed a
// position asks it again.
const replayPoll = 10 * time.Millisecond

// OpenReads opens a pool on each replica of urls with opts, and checks
// each once; with no urls it returns nil, which callers take as "the
// primary serves every read". A replica that does not answer is not an
// error: it is skipped until a check finds it up.
func OpenReads(ctx context.Context, primary *pgxpool.Pool, urls []string, maxLag time.Duration, logger *slog.Logger, opts ...OpenOption) (*Reads, error) {
	if len(urls) == 0 {
		return nil, nil
	}
	r := &Reads{primary: primary, maxLag: maxLag, logger: logger}
	for i, url := range urls {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read replica %d: malformed database URL", i+1)
		}
		name := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
		pool, err := pgxpool.NewWithConfig(ctx, poolConfig(cfg, opts))
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read replica %s: %w", name, redactedConnectError(err))
		}
		r.replicas = append(r.replicas, &replica{name: name, pool: pool})
	}
	r.check(ctx)
	return r, nil
}

// Close closes the replicas' pools (not the primary's); nil is a no-op.
func (r *Reads) Close() {
	if r == nil {
		return
	}
	for _, rep := range r.replicas {
		rep.pool.Close()
	}
}

// Run checks every replica each second until ctx ends; nil returns at
// once.
func (r *Reads) Run(ctx context.Context) {
	if r == nil {
		return
	}
	t := time.NewTicker(replicaCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check(ctx)
		}
	}
}

// check measures every replica's lag behind the primary (lagBehind).
func (r *Reads) check(ctx context.Context) {
	primaryCtx, cancel := context.WithTimeout(ctx, replicaCheckEvery)
	target, err := walPosition(primaryCtx, r.primary)
	cancel()
	now := time.Now()
	if err == nil {
		r.remember(walSample{at: now, lsn: target})
	}
	for _, rep := range r.replicas {
		var lag time.Duration
		problem := ""
		if err != nil {
			problem = "the primary's WAL position is unknown: " + redactedConnectError(err).Error()
		} else {
			replicaCtx, cancel := context.WithTimeout(ctx, replicaCheckEvery)
			lag, problem = r.measure(replicaCtx, rep, now)
			cancel()
		}
		rep.mu.Lock()
		was, first := rep.usable, !rep.checked
		rep.usable, rep.lag, rep.problem, rep.checked = problem == "", lag, problem, true
		rep.mu.Unlock()
		switch {
		case (was || first) && problem != "":
			r.logger.Warn("read_replica_skipped", slog.String("replica", rep.name), slog.String("reason", problem))
		case !was && problem == "":
			r.logger.Info("read_replica_serving", slog.String("replica", rep.name), slog.Duration("lag", lag))
		}
	}
}

// walSample is the primary's WAL position at a time.
type walSample struct {
	at  time.Time
	lsn uint64
}

// remember adds the primary's position at a check, keeping the samples
// that can tell a lag up to MaxLag and a little more.
func (r *Reads) remember(s walSample) {
	r.samplesMu.Lock()
	defer r.samplesMu.Unlock()
	keep := s.at.Add(-r.maxLag - 3*replicaCheckEvery)
	i := 0
	for i < len(r.samples) && r.samples[i].at.Before(keep) {
		i++
	}
	r.samples = append(r.samples[i:], s)
}

// lagBehind is how far behind the primary a replica that has replayed up
// to replayed is at now: none when it has replayed the primary's latest
// sampled position; else the time since the latest sample it has
// replayed (it may lack only what the primary wrote after that), or
// since the oldest sample kept when it has replayed none of them.
func (r *Reads) lagBehind(replayed uint64, now time.Time) time.Duration {
	r.samplesMu.Lock()
	defer r.samplesMu.Unlock()
	if len(r.samples) == 0 || replayed >= r.samples[len(r.samples)-1].lsn {
		return 0
	}
	since := r.samples[0].at
	for _, s := range r.samples {
		if s.lsn > replayed {
			break
		}
		since = s.at
	}
	return max(now.Sub(since), replicaCheckEvery)
}

// measure returns the replica's lag behind the primary at now, or why it
// may not serve.
func (r *Reads) measure(ctx context.Context, rep *replica, now time.Time) (time.Duration, string) {
	var standby bool
	var replayed *string
	err := rep.pool.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text`).Scan(&standby, &replayed)
	switch {
	case err != nil:
		return 0, "does not answer: " + redactedConnectError(err).Error()
	case !standby || replayed == nil:
		return 0, "is not a standby (promoted, or not a replica): its data may have diverged from the primary's"
	}
	lsn, err := parseLSN(*replayed)
	if err != nil {
		return 0, err.Error()
	}
	lag := r.lagBehind(lsn, now)
	if lag > r.maxLag {
		return lag, fmt.Sprintf("is more than %s behind the primary (at most %s)", lag.Round(time.Second), r.maxLag)
	}
	return lag, ""
}

// walPosition is the primary's WAL insert position: every transaction
// committed before it is read lies at or before it.
func walPosition(ctx context.Context, primary DBTX) (uint64, error) {
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return 0, err
	}
	return parseLSN(lsn)
}

// formatLSN writes a WAL position as PostgreSQL does.
func formatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, lsn&0xFFFFFFFF) }

// parseLSN reads a WAL position as PostgreSQL writes it (hex "X/Y").
func parseLSN(text string) (uint64, error) {
	hi, lo, ok := strings.Cut(text, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed WAL position %q", text)
	}
	return h<<32 | l, nil
}

// Source is where a read went.
type Source struct {
	// Replica names the replica that serves the read; empty for the
	// primary.
	Replica string
	// Lag is how far behind the primary the replica was at its last check.
	Lag time.Duration
	// Waited is how long ReaderAfter waited for the replica to replay the
	// primary's position.
	Waited time.Duration
}

// Reader returns a replica that may serve reads now (the usable ones in
// turn), or the primary when none may.
func (r *Reads) Reader() (DBTX, Source) {
	if rep := r.usable(); rep != nil {
		rep.mu.Lock()
		defer rep.mu.Unlock()
		return rep.pool, Source{Replica: rep.name, Lag: rep.lag}
	}
	if len(r.replicas) > 0 {
		r.countFallback(FallbackNoReplica)
	}
	return r.primary, Source{}
}

// Read runs fn on a reader (Reader). When a replica fails it with
// ErrUnavailable (the replica went down since its last check), the
// replica is set aside until a check finds it up again and fn runs once
// more, on the primary.
func (r *Reads) Read(fn func(DBTX, Source) error) error {
	db, src := r.Reader()
	err := fn(db, src)
	if err == nil || src.Replica == "" || !errors.Is(err, ErrUnavailable) {
		return err
	}
	for _, rep := range r.replicas {
		if rep.name == src.Replica {
			rep.setAside(r.logger, err)
		}
	}
	r.countFallback(FallbackReplicaFailed)
	return fn(r.primary, Source{})
}

// setAside marks the replica unusable after a read failed on it.
func (rep *replica) setAside(logger *slog.Logger, err error) {
	rep.mu.Lock()
	was := rep.usable
	rep.usable, rep.problem = false, "a read failed: "+err.Error()
	rep.mu.Unlock()
	if was {
		logger.Warn("read_replica_skipped", slog.String("replica", rep.name), slog.String("reason", "a read failed: "+err.Error()))
	}
}

// usable returns the next usable replica in turn, or nil.
func (r *Reads) usable() *replica {
	n := len(r.replicas)
	if n == 0 {
		return nil
	}
	start := int(r.next.Add(1))
	for i := range n {
		rep := r.replicas[(start+i)%n]
		rep.mu.Lock()
		ok := rep.usable
		rep.mu.Unlock()
		if ok {
			return rep
		}
	}
	return nil
}

// ReaderAfter returns a database that holds every transaction committed
// on the primary before the call: a usable replica once it has replayed
// past the primary's WAL position now (waiting at most MaxLag for it),
// else the primary. Exports, stream batches and downloads read their
// events through it after their ingest barrier, so that a replica never
// makes them miss an acknowledged event.
func (r *Reads) ReaderAfter(ctx context.Context) (DBTX, Source, error) {
	rep := r.usable()
	if rep == nil {
		if len(r.replicas) > 0 {
			r.countFallback(FallbackNoReplica)
		}
		return r.primary, Source{}, nil
	}
	target, err := walPosition(ctx, r.primary)
	if err != nil {
		return nil, Source{}, fmt.Errorf("primary's WAL position: %w", translate(err))
	}
	started := time.Now()
	wait := time.NewTimer(r.maxLag)
	defer wait.Stop()
	for {
		var replayed bool
		err := rep.pool.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, formatLSN(target)).Scan(&replayed)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, Source{}, ctx.Err()
		case err != nil:
			r.logger.Warn("read_replica_skipped", slog.String("replica", rep.name), slog.String("reason", "does not answer: "+redactedConnectError(err).Error()))
			r.countFallback(FallbackReplicaFailed)
			return r.primary, Source{}, nil
		case replayed:
			rep.mu.Lock()
			lag := rep.lag
			rep.mu.Unlock()
			return rep.pool, Source{Replica: rep.name, Lag: lag, Waited: time.Since(started)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, Source{}, ctx.Err()
		case <-wait.C:
			r.logger.Warn("read_replica_skipped", slog.String("replica", rep.name), slog.String("reason", fmt.Sprintf("did not replay the primary's position %s within %s", formatLSN(target), r.maxLag)))
			r.countFallback(FallbackReplicaBehind)
			return r.primary, Source{}, nil
		case <-time.After(replayPoll):
		}
	}
}

// countFallback counts a read that the primary served instead of a
// replica.
func (r *Reads) countFallback(reason string) {
	c, _ := r.fallbacks.LoadOrStore(reason, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
}

// ReplicaState is what the last check found of a replica.
type ReplicaState struct {
	Name   string
	Usable bool
	Lag    time.Duration
}

// Replicas returns every replica's state, in configuration order.
func (r *Reads) Replicas() []ReplicaState {
	states := make([]ReplicaState, 0, len(r.replicas))
	for _, rep := range r.replicas {
		rep.mu.Lock()
		states = append(states, ReplicaState{Name: rep.name, Usable: rep.usable, Lag: rep.lag})
		rep.mu.Unlock()
	}
	return states
}

// Fallbacks returns how many reads the primary served because no replica
// could, by reason (the Fallback constants).
func (r *Reads) Fallbacks() map[string]int64 {
	counts := map[string]int64{}
	r.fallbacks.Range(func(k, v any) bool {
		counts[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return counts
}
