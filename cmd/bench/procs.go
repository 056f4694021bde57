package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	audexconfig "github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/store"
)

// process is one of audex's commands (api or worker), built from this
// checkout and started by the benchmark as a process of its own, so that
// its memory can be read from /proc and it runs exactly as deployed. Its
// log lines go to the benchmark's stderr, prefixed with its name.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done is closed
}

// services are the api and worker processes of the later phases, and the
// files they use.
type services struct {
	dir         string // temporary: binaries, configuration, the local export folder
	localFolder string // the "local" destination
	s3Bucket    string // the "minio" destination's bucket; "" without S3
	api, worker *process
	// workerEnv is the worker's environment, for more worker processes.
	workerEnv []string
	// configPath is the processes' configuration file.
	configPath string
	apiURL     string
	buildTime  time.Duration
	// The integrity log's first seal of every loaded event, in the
	// benchmark's process before the worker starts (so that the worker's
	// does not run in the middle of the first measurements).
	sealed   int64
	sealTime time.Duration
	// logKeys are the keys the worker signs with.
	logKeys *integrity.Keys
}

// buildCommands builds cmd/api, cmd/worker and cmd/audexctl of this
// checkout into dir.
// It runs `go build` in the working directory, which `make bench` sets to
// the module's root.
func (b *bench) buildCommands(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join("cmd", "worker")); err != nil {
		return errors.New("build the api and worker: run bench from the module's root (make bench does)")
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/api", "./cmd/worker", "./cmd/audexctl")
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build ./cmd/api ./cmd/worker ./cmd/audexctl: %w", err)
	}
	b.logger.Info("built", slog.String("commands", "api, worker, audexctl"), slog.Duration("took", time.Since(start)))
	return nil
}

// startServices builds the api and worker, writes their configuration
// (a local folder destination and, when S3 is set up, a MinIO one) and
// starts both on the benchmark's database: the api on a free loopback
// port.
func (b *bench) startServices(ctx context.Context) (*services, error) {
	dir, err := os.MkdirTemp("", "audex-bench-")
	if err != nil {
		return nil, err
	}
	s := &services{dir: dir, localFolder: filepath.Join(dir, "exports")}
	if err := os.Mkdir(s.localFolder, 0o700); err != nil {
		return s, err
	}
	start := time.Now()
	if err := b.buildCommands(ctx, filepath.Join(dir, "bin")); err != nil {
		return s, err
	}
	s.buildTime = time.Since(start)
	// The integrity log's signing key, as `api migrate` makes it.
	keyFile := filepath.Join(dir, "log-signing.key")
	if _, err := integrity.EnsureKeyFile(keyFile, "audex-bench"); err != nil {
		return s, err
	}
	keys, err := integrity.LoadKeys("", keyFile)
	if err != nil {
		return s, err
	}
	s.logKeys = keys
	b.logger.Info("sealing", slog.String("what", "every loaded event into the integrity log"))
	start = time.Now()
	if s.sealed, err = store.SealAllLogs(ctx, b.pool, audexconfig.DefaultLogName, 500_000, keys.Sign); err != nil {
		return s, err
	}
	// The statistics autovacuum gathers after so many new leaves: without
	// them an export's join with log_leaves is planned for a few rows.
	if _, err := b.pool.Exec(ctx, `ANALYZE log_leaves`); err != nil {
		return s, err
	}
	s.sealTime = time.Since(start)
	// Streams may ask for short intervals: the keep-up stream's is 10 s.
	// The worker seals every benchSealInterval.
	conf := fmt.Sprintf("stream_min_interval: 1s\nseal_interval: %s\nlog_key_file: %q\ndestinations:\n  - name: local\n    type: file\n    bucket: %q\n", benchSealInterval, keyFile, s.localFolder)
	if b.cfg.s3Endpoint != "" {
		if s.s3Bucket, err = b.createBucket(ctx); err != nil {
			return s, err
		}
		conf += fmt.Sprintf("  - name: minio\n    type: s3\n    bucket: %s\n    endpoint: %q\n    region: %s\n    access_key_id_env: %s\n    secret_access_key_env: %s\n",
			s.s3Bucket, b.cfg.s3Endpoint, b.cfg.s3Region, b.cfg.s3AccessKeyIDEnv, b.cfg.s3SecretKeyEnv)
	}
	s.configPath = filepath.Join(dir, "audex.yaml")
	if err := os.WriteFile(s.configPath, []byte(conf), 0o600); err != nil {
		return s, err
	}
	apiEnv := append(serviceEnv(b.cfg.databaseURL, s.configPath, "bench-api"), "AUDEX_LISTEN=127.0.0.1:0")
	api, ready, err := b.startProcess(ctx, "api", filepath.Join(dir, "bin", "api"), apiEnv, "api_listening")
	s.api = api
	if err != nil {
		return s, err
	}
	addr, _ := ready["addr"].(string)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		return s, fmt.Errorf("api: listening on %q, want a 127.0.0.1 address", addr)
	}
	s.apiURL = "http://" + addr
	s.workerEnv = serviceEnv(b.cfg.databaseURL, s.configPath, "bench-worker")
	if s.worker, _, err = b.startProcess(ctx, "worker", filepath.Join(dir, "bin", "worker"), s.workerEnv, "worker_started"); err != nil {
		return s, err
	}
	return s, nil
}

// stop stops the processes (TERM, then KILL after the worker's drain
// time), deletes the S3 bucket's objects and the temporary folder.
func (s *services) stop(ctx context.Context, b *bench) {
	if s == nil {
		return
	}
	for _, p := range []*process{s.worker, s.api} {
		if p != nil {
			p.stop()
		}
	}
	if s.s3Bucket != "" {
		if err := b.deleteBucket(context.WithoutCancel(ctx), s.s3Bucket); err != nil {
			b.logger.Warn("s3_cleanup_failed", slog.Any("error", err))
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// serviceEnv is the benchmark's environment for a service: without
// audex's own settings (so that nothing outside the run changes it),
// except the MinIO credentials that the S3 destination names. Its
// database sessions carry appName as application_name, so that
// pg_stat_activity tells the api's from the worker's.
func serviceEnv(databaseURL, configPath, appName string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || strings.HasPrefix(name, "AUDEX_") && !strings.HasPrefix(name, "AUDEX_TEST_S3_") {
			continue
		}
		env = append(env, kv)
	}
	switch {
	case !strings.Contains(databaseURL, "://"):
		databaseURL += " application_name=" + appName
	case strings.Contains(databaseURL, "?"):
		databaseURL += "&application_name=" + appName
	default:
		databaseURL += "?application_name=" + appName
	}
	return append(env, "DATABASE_URL="+databaseURL, "AUDEX_CONFIG="+configPath)
}

// startProcess starts bin and waits (at most a minute) for the JSON log
// line whose msg is ready, which it returns.
func (b *bench) startProcess(ctx context.Context, name, bin string, env []string, ready string) (*process, map[string]any, error) {
	cmd := exec.Command(bin)
	cmd.Env = env
	// The process ends with the benchmark even if the benchmark is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	logs, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	readyLine := make(chan map[string]any, 1)
	var logsDone sync.WaitGroup
	logsDone.Add(1)
	go func() {
		defer logsDone.Done()
		sc := bufio.NewScanner(logs)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			fmt.Fprintf(b.stderr, "%s: %s\n", name, line)
			var m map[string]any
			if !sent && json.Unmarshal(line, &m) == nil && m["msg"] == ready {
				readyLine <- m
				sent = true
			}
		}
	}()
	go func() {
		logsDone.Wait() // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		close(p.done)
	}()
	b.logger.Info("started", slog.String("process", name), slog.Int("pid", cmd.Process.Pid))
	select {
	case m := <-readyLine:
		return p, m, nil
	case <-p.done:
		return p, nil, fmt.Errorf("%s exited before it was ready: %v", name, p.err)
	case <-time.After(time.Minute):
		return p, nil, fmt.Errorf("%s did not log %s within a minute", name, ready)
	case <-ctx.Done():
		return p, nil, ctx.Err()
	}
}

// stop sends TERM and waits for the process to exit (the worker drains
// running jobs for up to 30 s), then KILLs it.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// memory returns the process's resident set size and its peak (VmRSS and
// VmHWM of /proc/PID/status), in bytes.
func (p *process) memory() (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of %s: %w", p.name, err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			rss = kb << 10
		} else if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// usage is what a process has used so far: CPU time and write calls.
type usage struct {
	cpu    time.Duration // user + system
	writes int64         // write system calls (syscw of /proc/PID/io)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times (100 on
// every Linux platform Go supports).
const clockTicks = 100

// usage reads the process's CPU time and write calls from /proc.
func (p *process) usage() (usage, error) {
	var u usage
	pid := p.cmd.Process.Pid
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("read CPU time of %s: %w", p.name, err)
	}
	// The fields after the command's ")": state is field 3, utime 14, stime 15.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("read CPU time of %s: short /proc/%d/stat", p.name, pid)
	}
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	u.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for line := range strings.SplitSeq(string(io), "\n") {
			if _, err := fmt.Sscanf(line, "syscw: %d", &u.writes); err == nil {
				break
			}
		}
	}
	return u, nil
}

// procWatch follows a process's resident memory and usage during one
// measurement.
type procWatch struct {
	p       *process
	before  int64
	from    usage
	sampled atomic.Int64 // the highest VmRSS seen
	stopped chan struct{}
	done    chan struct{}
}

// procDelta is what a process did during one measurement.
type procDelta struct {
	rssFrom, rssPeak int64 // resident memory before and at its peak, in bytes
	cpu              time.Duration
	writes           int64
}

// watch resets the process's peak memory (writing 5 to
// /proc/PID/clear_refs sets VmHWM to the current VmRSS), notes its usage
// and samples VmRSS every 20 ms until end is called.
func (p *process) watch() (*procWatch, error) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		return nil, fmt.Errorf("reset the peak memory of %s: %w", p.name, err)
	}
	rss, _, err := p.memory()
	if err != nil {
		return nil, err
	}
	from, err := p.usage()
	if err != nil {
		return nil, err
	}
	w := &procWatch{p: p, before: rss, from: from, stopped: make(chan struct{}), done: make(chan struct{})}
	w.sampled.Store(rss)
	go func() {
		defer close(w.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.stopped:
				return
			case <-t.C:
				if rss, _, err := p.memory(); err == nil && rss > w.sampled.Load() {
					w.sampled.Store(rss)
				}
			}
		}
	}()
	return w, nil
}

// end stops sampling and returns the resident memory before and the peak
// during the measurement (the kernel's VmHWM, which sampling cannot miss,
// or the highest sample if that is higher), and the usage meanwhile.
func (w *procWatch) end() procDelta {
	close(w.stopped)
	<-w.done
	d := procDelta{rssFrom: w.before, rssPeak: w.sampled.Load()}
	if _, hwm, err := w.p.memory(); err == nil {
		d.rssPeak = max(d.rssPeak, hwm)
	}
	if to, err := w.p.usage(); err == nil {
		d.cpu, d.writes = to.cpu-w.from.cpu, to.writes-w.from.writes
	}
	return d
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.0f", float64(n)/(1<<20))
}

// client is the SDK's client of the api process with key. It does not
// retry: an answer other than the expected one fails the measurement.
func (s *services) client(key string) *client.Client {
	c, err := client.New(s.apiURL, key, client.WithHTTPClient(apiHTTP), client.WithRetries(0, 0))
	if err != nil {
		panic(err) // apiURL is checked when the api starts
	}
	return c
}

// apiHTTP makes the requests to the api process.
var apiHTTP = &http.Client{
	Timeout:   2 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// waitExport polls the export every poll until it is finished or limit
// passes; progress, when not nil, sees every status read.
func waitExport(ctx context.Context, c *client.Client, id string, poll, limit time.Duration, progress func(audex.Export)) (audex.Export, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	e, err := c.Exports.Wait(ctx, id, client.WaitOptions{FirstPoll: poll, MaxPoll: poll, Progress: progress})
	if err != nil {
		return e, fmt.Errorf("export %s, %s after %s (%d of %d records, attempt %d): %w",
			id, e.Status, limit, e.Progress.RecordsExported, e.EstimatedRecords, e.Attempts, err)
	}
	return e, nil
}

// waitPurge polls the purge every 50 ms until it is finished or limit
// passes.
func waitPurge(ctx context.Context, c *client.Client, id string, limit time.Duration) (audex.Purge, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	p, err := c.Purges.Wait(ctx, id, 50*time.Millisecond)
	if err != nil {
		return p, fmt.Errorf("purge %s, %s after %s (%d deleted): %w", id, p.Status, limit, p.Deleted, err)
	}
	return p, nil
}
