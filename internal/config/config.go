// Package config loads audex's operator configuration: an optional YAML
// file (AUDEX_CONFIG) with environment variables winning over it. Every
// setting has a default, so nothing is needed for a first run; the
// defaults live here only (the packages that take a setting fall back to
// these when given zero). It imports only the domain package.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/audex-dev/audex"
)

// Defaults of docs/api.md.
const (
	DefaultDatabaseURL       = "postgres://postgres@127.0.0.1:5432/audex?sslmode=disable"
	DefaultListen            = "127.0.0.1:8080"
	DefaultRetentionInterval = 24 * time.Hour
	DefaultSummaryInterval   = 30 * time.Second
	// DefaultStreamMinInterval is the least interval_seconds a stream may
	// ask for.
	DefaultStreamMinInterval = time.Minute
	// DefaultSealInterval is how often the integrity log is extended and
	// a checkpoint signed.
	DefaultSealInterval = time.Minute
	DefaultLogName      = "audex"
	DefaultLogKeyFile   = "./data/log-signing.key"
	// DefaultReadMaxLag is how far a read replica may be behind the
	// primary and still serve reads.
	DefaultReadMaxLag = 10 * time.Second
)

// Config is the whole operator configuration.
type Config struct {
	DatabaseURL string `yaml:"database_url"`
	// ReadDatabaseURLs are streaming replicas of DatabaseURL that serve
	// reads (none: the primary serves everything).
	ReadDatabaseURLs []string `yaml:"-"`
	// ReadMaxLag is how far behind the primary a replica may be and still
	// serve reads; one further behind, or down, is skipped.
	ReadMaxLag time.Duration `yaml:"read_max_lag"`
	Listen     string        `yaml:"listen"`
	// WorkerMetricsListen is where the worker serves /metrics; empty (the
	// default) serves none.
	WorkerMetricsListen string `yaml:"worker_metrics_listen"`
	// RetentionInterval is how often the retention job runs.
	RetentionInterval time.Duration `yaml:"retention_interval"`
	// SummaryInterval is how often new events are rolled up into the
	// summary's daily counts.
	SummaryInterval time.Duration `yaml:"summary_interval"`
	// StreamMinInterval is the least interval a stream may ask for (1 s to
	// 24 h).
	StreamMinInterval time.Duration `yaml:"stream_min_interval"`
	// SealInterval is how often the integrity log is extended and a
	// checkpoint signed.
	SealInterval time.Duration `yaml:"seal_interval"`
	// LogName names the integrity log: its signing key's name and the
	// first part of every checkpoint's origin (<log_name>/<tenant>).
	LogName string `yaml:"log_name"`
	// LogKeyFile is the file of the log's signing keys, which `api
	// migrate` creates when missing; LogKey (AUDEX_LOG_KEY), when set,
	// holds the keys instead.
	LogKeyFile string `yaml:"log_key_file"`
	LogKey     string `yaml:"-"`
	// CursorSecret overrides the cursor-signing secret that `api migrate`
	// stores in the database. Every replica must use the same one.
	CursorSecret string        `yaml:"-"`
	Destinations []Destination `yaml:"destinations"`
	// Exports tunes export jobs.
	Exports Exports `yaml:"exports"`
	// RateLimit limits each API key's requests per API process; off by
	// default.
	RateLimit RateLimit `yaml:"rate_limit"`
	// Limits keep one tenant from slowing another: statement budgets,
	// connections and admission (docs/api.md: tenants are walls under load
	// too).
	Limits Limits `yaml:"limits"`
}

// Limits are the budgets and caps that keep one tenant's requests from
// making another's wait. Every statement has a budget (PostgreSQL's
// statement_timeout) by the kind of work it does; a request that needs
// more is refused rather than left to run.
type Limits struct {
	// ListTimeout budgets each statement of a request that is not a
	// summary or a download: lists, gets, filters, ingest (default 5s).
	ListTimeout Duration `yaml:"list_timeout"`
	// SummaryTimeout budgets each statement of a summary or a trail's
	// summary (default 10s).
	SummaryTimeout Duration `yaml:"summary_timeout"`
	// DownloadPageTimeout budgets the read of one page of a download
	// (default 10s).
	DownloadPageTimeout Duration `yaml:"download_page_timeout"`
	// ExportPageTimeout budgets the worker's statements, among them the
	// read of one page of an export (default 30s).
	ExportPageTimeout Duration `yaml:"export_page_timeout"`
	// PurgeBatchTimeout budgets one batch of a purge (default 60s).
	PurgeBatchTimeout Duration `yaml:"purge_batch_timeout"`
	// PoolSize is how many database connections one API process uses for
	// requests (default 16); DownloadPoolSize how many more it uses for
	// the pages of downloads (default 4), so that downloads never take
	// the connections of interactive requests.
	PoolSize         int `yaml:"pool_size"`
	DownloadPoolSize int `yaml:"download_pool_size"`
	// TenantRequests is how many requests of one tenant one API process
	// works at once (default 8, less than PoolSize so that another tenant
	// always finds a connection); more wait briefly, then get 429.
	TenantRequests int `yaml:"tenant_requests"`
	// TenantSummaries is how many summaries and trails of one tenant one
	// API process works at once (default 1): the requests that cost the
	// database most; more wait briefly, then get 429.
	TenantSummaries int `yaml:"tenant_summaries"`
	// Requests is how many requests of all tenants one API process works
	// at once (default 64, downloads apart); more wait briefly, then get
	// 503.
	Requests int `yaml:"requests"`
	// TenantDownloads is how many downloads of one tenant one API process
	// streams at once (default 2; 429 past it), Downloads how many in all
	// (default 8; 503 past it).
	TenantDownloads int `yaml:"tenant_downloads"`
	Downloads       int `yaml:"downloads"`
	// DownloadMinRate is the slowest a client may read a download, in
	// bytes per second (default 32768); a slower one is cut off.
	DownloadMinRate int64 `yaml:"download_min_rate"`
}

// DefaultLimits are the limits of a configuration that sets none.
var DefaultLimits = Limits{
	ListTimeout:         Duration(5 * time.Second),
	SummaryTimeout:      Duration(10 * time.Second),
	DownloadPageTimeout: Duration(10 * time.Second),
	ExportPageTimeout:   Duration(30 * time.Second),
	PurgeBatchTimeout:   Duration(60 * time.Second),
	PoolSize:            16,
	DownloadPoolSize:    4,
	TenantRequests:      8,
	TenantSummaries:     1,
	Requests:            64,
	TenantDownloads:     2,
	Downloads:           8,
	DownloadMinRate:     32 << 10,
}

// RateLimit is a token bucket per API key: Burst requests at once,
// refilled at PerSecond. PerSecond 0 is no limit.
type RateLimit struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Exports tunes export jobs: how many run at once per worker process, the
// part limits of requests that give none, the caps that keep tenants
// fair, and the timing of attempts.
type Exports struct {
	Concurrency    int   `yaml:"concurrency"`
	PartMaxRecords int   `yaml:"part_max_records"`
	PartMaxBytes   int64 `yaml:"part_max_bytes"`
	// MinPartMaxRecords is the least part_max_records a request may ask
	// for (default 1000), so that part counts stay sane.
	MinPartMaxRecords int `yaml:"min_part_max_records"`
	// MaxActivePerTenant caps a tenant's queued and running exports
	// (default 10); more are refused with 429.
	MaxActivePerTenant int `yaml:"max_active_per_tenant"`
	// RunningPerTenant is how many of a tenant's exports run at once
	// across all workers (default 1); the others wait their turn, so one
	// tenant's backlog never holds another tenant's export for more than
	// one attempt window.
	RunningPerTenant int `yaml:"running_per_tenant"`
	// AttemptWindow is how long one attempt works before it checkpoints
	// and continues in a new one (default 40s).
	AttemptWindow Duration `yaml:"attempt_window"`
	// LeaseTTL is how long a silent worker keeps its claim on an export;
	// a dead worker's export resumes elsewhere after it (default 10s,
	// renewed every third of it).
	LeaseTTL Duration `yaml:"lease_ttl"`
	// ReaperInterval is how often stalled exports are looked for
	// (default 2s; up to 4s needs no River leader).
	ReaperInterval Duration `yaml:"reaper_interval"`
}

// DefaultExports are the export settings of a configuration that sets
// none.
var DefaultExports = Exports{Concurrency: 2, PartMaxRecords: 100_000, PartMaxBytes: 64 << 20,
	MinPartMaxRecords: 1000, MaxActivePerTenant: 10, RunningPerTenant: 1,
	AttemptWindow: Duration(40 * time.Second), LeaseTTL: Duration(10 * time.Second), ReaperInterval: Duration(2 * time.Second)}

// Duration is a time.Duration written in YAML as a Go duration ("40s").
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	v, err := time.ParseDuration(node.Value)
	if err != nil || v <= 0 {
		return fmt.Errorf("line %d: %q is not a positive Go duration such as 30s", node.Line, node.Value)
	}
	*d = Duration(v)
	return nil
}

// Destination is an export destination that the operator configured.
type Destination struct {
	Name     string   `yaml:"name"`
	Type     string   `yaml:"type"`
	Bucket   string   `yaml:"bucket"`
	Prefix   string   `yaml:"prefix"`
	Region   string   `yaml:"region"`
	Endpoint string   `yaml:"endpoint"`
	Tenants  []string `yaml:"tenants"`

	// Credentials, by the names of the environment variables that hold
	// them, never by value. All optional: without them each SDK's standard
	// chain applies (AWS env/profile/role; Google application default
	// credentials or STORAGE_EMULATOR_HOST; AZURE_STORAGE_CONNECTION_STRING).
	//
	// s3: static keys (the first two go together).
	AccessKeyIDEnv     string `yaml:"access_key_id_env"`
	SecretAccessKeyEnv string `yaml:"secret_access_key_env"`
	SessionTokenEnv    string `yaml:"session_token_env"`
	// gcs: the variable holding the path of a service-account key file.
	CredentialsFileEnv string `yaml:"credentials_file_env"`
	// azure_blob: the variable holding a connection string, or the
	// account's blob URL (https://ACCOUNT.blob.core.windows.net) used with
	// the default Azure credential.
	ConnectionStringEnv string `yaml:"connection_string_env"`
	AccountURL          string `yaml:"account_url"`

	// webhook (streams only): the variables holding the URL that batches
	// are POSTed to and the secret they are signed with, and the hosts
	// (host or host:port) deliveries may go to.
	URLEnv       string   `yaml:"url_env"`
	SecretEnv    string   `yaml:"secret_env"`
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// ServesExports reports whether export jobs may write to the destination:
// every type but webhook, which takes streams only.
func (d Destination) ServesExports() bool { return d.Type != "webhook" }

var envVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validateWebhook checks a webhook destination: the variables of its URL
// and secret, and hosts to allow; no bucket or object-store setting.
func (d Destination) validateWebhook() error {
	switch {
	case d.URLEnv == "" || d.SecretEnv == "":
		return errors.New("url_env and secret_env are required: the names of the variables holding the webhook's URL and its signing secret")
	case len(d.AllowedHosts) == 0:
		return errors.New("allowed_hosts is required: the hosts (host or host:port) that deliveries may go to")
	case d.Bucket != "" || d.Prefix != "" || d.Region != "" || d.Endpoint != "":
		return errors.New("bucket, prefix, region and endpoint do not apply to type webhook")
	}
	for _, h := range d.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/@?# ") {
			return fmt.Errorf("allowed_hosts: %q is not a host or host:port", h)
		}
	}
	return nil
}

// validateCredentials checks the credential settings of a destination:
// variable names that are names, and only the settings of its type.
func (d Destination) validateCredentials() error {
	for _, f := range []struct{ key, value, typ string }{
		{"access_key_id_env", d.AccessKeyIDEnv, "s3"},
		{"secret_access_key_env", d.SecretAccessKeyEnv, "s3"},
		{"session_token_env", d.SessionTokenEnv, "s3"},
		{"credentials_file_env", d.CredentialsFileEnv, "gcs"},
		{"connection_string_env", d.ConnectionStringEnv, "azure_blob"},
		{"account_url", d.AccountURL, "azure_blob"},
		{"url_env", d.URLEnv, "webhook"},
		{"secret_env", d.SecretEnv, "webhook"},
	} {
		switch {
		case f.value == "":
		case d.Type != f.typ:
			return fmt.Errorf("%s applies to type %s only", f.key, f.typ)
		case f.key != "account_url" && !envVarName.MatchString(f.value):
			return fmt.Errorf("%s must be the name of an environment variable (the credential itself stays in the environment)", f.key)
		}
	}
	switch {
	case (d.AccessKeyIDEnv == "") != (d.SecretAccessKeyEnv == ""):
		return errors.New("access_key_id_env and secret_access_key_env go together")
	case d.SessionTokenEnv != "" && d.AccessKeyIDEnv == "":
		return errors.New("session_token_env needs access_key_id_env and secret_access_key_env")
	case d.ConnectionStringEnv != "" && d.AccountURL != "":
		return errors.New("give connection_string_env or account_url, not both")
	}
	if d.AccountURL != "" {
		u, err := url.Parse(d.AccountURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return errors.New("account_url must be an http(s) URL such as https://ACCOUNT.blob.core.windows.net, without credentials or query")
		}
	}
	return nil
}

// Load reads the file named by AUDEX_CONFIG (if any) and then the
// environment, through getenv. Unknown keys and malformed values are
// errors that name them.
func Load(getenv func(string) string) (Config, error) {
	cfg := Config{
		DatabaseURL:       DefaultDatabaseURL,
		Listen:            DefaultListen,
		RetentionInterval: DefaultRetentionInterval,
		SummaryInterval:   DefaultSummaryInterval,
		StreamMinInterval: DefaultStreamMinInterval,
		SealInterval:      DefaultSealInterval,
		ReadMaxLag:        DefaultReadMaxLag,
		LogName:           DefaultLogName,
		LogKeyFile:        DefaultLogKeyFile,
		Destinations:      []Destination{{Name: "local", Type: "file", Bucket: "./data/exports"}},
		Exports:           DefaultExports,
		Limits:            DefaultLimits,
	}
	if path := getenv("AUDEX_CONFIG"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read AUDEX_CONFIG: %w", err)
		}
		if err := parseYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("parse %s: %w", path, err)
		}
	}
	if v := getenv("DATABASE_URL"); v != "" {
		cfg.DatabaseURL = v
	}
	if v := getenv("AUDEX_READ_DATABASE_URL"); v != "" {
		cfg.ReadDatabaseURLs = splitURLs(v)
	}
	if v := getenv("AUDEX_LISTEN"); v != "" {
		cfg.Listen = v
	}
	if v := getenv("AUDEX_WORKER_METRICS_LISTEN"); v != "" {
		cfg.WorkerMetricsListen = v
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"AUDEX_RETENTION_INTERVAL", &cfg.RetentionInterval}, {"AUDEX_SUMMARY_INTERVAL", &cfg.SummaryInterval}, {"AUDEX_STREAM_MIN_INTERVAL", &cfg.StreamMinInterval}, {"AUDEX_SEAL_INTERVAL", &cfg.SealInterval}, {"AUDEX_READ_MAX_LAG", &cfg.ReadMaxLag}} {
		if v := getenv(d.name); v != "" {
			if err := parseDuration(d.name, v, d.dst); err != nil {
				return cfg, err
			}
		}
	}
	if v := getenv("AUDEX_RATE_LIMIT"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return cfg, fmt.Errorf("AUDEX_RATE_LIMIT: %q is not a number of requests per second", v)
		}
		cfg.RateLimit.PerSecond = n
	}
	if v := getenv("AUDEX_RATE_LIMIT_BURST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("AUDEX_RATE_LIMIT_BURST: %q is not a whole number of requests", v)
		}
		cfg.RateLimit.Burst = n
	}
	if v := getenv("AUDEX_EXPORT_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("AUDEX_EXPORT_CONCURRENCY: %q is not a number", v)
		}
		cfg.Exports.Concurrency = n
	}
	if v := getenv("AUDEX_LOG_NAME"); v != "" {
		cfg.LogName = v
	}
	if v := getenv("AUDEX_LOG_KEY_FILE"); v != "" {
		cfg.LogKeyFile = v
	}
	cfg.LogKey = getenv("AUDEX_LOG_KEY")
	cfg.CursorSecret = getenv("AUDEX_CURSOR_SECRET")
	return cfg, cfg.validate()
}

// parseDuration sets *dst from value, a Go duration, or says which
// setting (name) is wrong.
func parseDuration(name, value string, dst *time.Duration) error {
	d, err := time.ParseDuration(value)
	if err != nil {
		return fmt.Errorf("%s: %q is not a Go duration such as 30s or 24h", name, value)
	}
	*dst = d
	return nil
}

// splitURLs splits a comma-separated list of database URLs, dropping
// empty items.
func splitURLs(list string) []string {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// parseYAML decodes the file strictly over the defaults in cfg.
func parseYAML(data []byte, cfg *Config) error {
	var file struct {
		DatabaseURL       *string        `yaml:"database_url"`
		ReadDatabaseURL   *string        `yaml:"read_database_url"`
		ReadMaxLag        *string        `yaml:"read_max_lag"`
		Listen            *string        `yaml:"listen"`
		WorkerMetrics     *string        `yaml:"worker_metrics_listen"`
		RetentionInterval *string        `yaml:"retention_interval"`
		SummaryInterval   *string        `yaml:"summary_interval"`
		StreamMinInterval *string        `yaml:"stream_min_interval"`
		SealInterval      *string        `yaml:"seal_interval"`
		LogName           *string        `yaml:"log_name"`
		LogKeyFile        *string        `yaml:"log_key_file"`
		Destinations      *[]Destination `yaml:"destinations"`
		Exports           *Exports       `yaml:"exports"`
		RateLimit         *RateLimit     `yaml:"rate_limit"`
		Limits            *Limits        `yaml:"limits"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if file.DatabaseURL != nil {
		cfg.DatabaseURL = *file.DatabaseURL
	}
	if file.ReadDatabaseURL != nil {
		cfg.ReadDatabaseURLs = splitURLs(*file.ReadDatabaseURL)
	}
	if file.ReadMaxLag != nil {
		if err := parseDuration("read_max_lag", *file.ReadMaxLag, &cfg.ReadMaxLag); err != nil {
			return err
		}
	}
	if file.Listen != nil {
		cfg.Listen = *file.Listen
	}
	if file.WorkerMetrics != nil {
		cfg.WorkerMetricsListen = *file.WorkerMetrics
	}
	if file.RetentionInterval != nil {
		if err := parseDuration("retention_interval", *file.RetentionInterval, &cfg.RetentionInterval); err != nil {
			return err
		}
	}
	if file.SummaryInterval != nil {
		if err := parseDuration("summary_interval", *file.SummaryInterval, &cfg.SummaryInterval); err != nil {
			return err
		}
	}
	if file.StreamMinInterval != nil {
		if err := parseDuration("stream_min_interval", *file.StreamMinInterval, &cfg.StreamMinInterval); err != nil {
			return err
		}
	}
	if file.SealInterval != nil {
		if err := parseDuration("seal_interval", *file.SealInterval, &cfg.SealInterval); err != nil {
			return err
		}
	}
	setIfGiven(&cfg.LogName, deref(file.LogName))
	setIfGiven(&cfg.LogKeyFile, deref(file.LogKeyFile))
	if file.Destinations != nil {
		cfg.Destinations = *file.Destinations
	}
	if file.RateLimit != nil {
		cfg.RateLimit = *file.RateLimit
	}
	if file.Limits != nil {
		cfg.Limits = file.Limits.over(cfg.Limits)
	}
	if file.Exports != nil {
		x, f := &cfg.Exports, file.Exports
		setIfGiven(&x.Concurrency, f.Concurrency)
		setIfGiven(&x.PartMaxRecords, f.PartMaxRecords)
		setIfGiven(&x.PartMaxBytes, f.PartMaxBytes)
		setIfGiven(&x.MinPartMaxRecords, f.MinPartMaxRecords)
		setIfGiven(&x.MaxActivePerTenant, f.MaxActivePerTenant)
		setIfGiven(&x.RunningPerTenant, f.RunningPerTenant)
		setIfGiven(&x.AttemptWindow, f.AttemptWindow)
		setIfGiven(&x.LeaseTTL, f.LeaseTTL)
		setIfGiven(&x.ReaperInterval, f.ReaperInterval)
	}
	return nil
}

// deref is *p, or zero for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// setIfGiven sets *dst to v unless v is zero (not given in the file).
func setIfGiven[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// over returns l with the settings it leaves at zero taken from base.
func (l Limits) over(base Limits) Limits {
	b := base
	for _, v := range []struct{ dst, given *Duration }{
		{&b.ListTimeout, &l.ListTimeout}, {&b.SummaryTimeout, &l.SummaryTimeout}, {&b.DownloadPageTimeout, &l.DownloadPageTimeout},
		{&b.ExportPageTimeout, &l.ExportPageTimeout}, {&b.PurgeBatchTimeout, &l.PurgeBatchTimeout},
	} {
		setIfGiven(v.dst, *v.given)
	}
	for _, v := range []struct{ dst, given *int }{
		{&b.PoolSize, &l.PoolSize}, {&b.DownloadPoolSize, &l.DownloadPoolSize}, {&b.TenantRequests, &l.TenantRequests},
		{&b.TenantSummaries, &l.TenantSummaries}, {&b.Requests, &l.Requests}, {&b.TenantDownloads, &l.TenantDownloads}, {&b.Downloads, &l.Downloads},
	} {
		setIfGiven(v.dst, *v.given)
	}
	setIfGiven(&b.DownloadMinRate, l.DownloadMinRate)
	return b
}

// validate checks the limits' ranges.
func (l Limits) validate() error {
	switch {
	case l.PoolSize < 2 || l.PoolSize > 1000:
		return errors.New("limits.pool_size must be from 2 to 1000")
	case l.DownloadPoolSize < 1 || l.DownloadPoolSize > 1000:
		return errors.New("limits.download_pool_size must be from 1 to 1000")
	case l.TenantRequests < 1 || l.TenantRequests >= l.PoolSize:
		return errors.New("limits.tenant_requests must be from 1 to less than limits.pool_size, so that another tenant always finds a connection")
	case l.Requests < l.TenantRequests || l.Requests > 100000:
		return errors.New("limits.requests must be from limits.tenant_requests to 100000")
	case l.TenantSummaries < 1 || l.TenantSummaries > l.TenantRequests:
		return errors.New("limits.tenant_summaries must be from 1 to limits.tenant_requests")
	case l.TenantDownloads < 1 || l.Downloads < l.TenantDownloads || l.Downloads > 10000:
		return errors.New("limits.tenant_downloads must be at least 1 and limits.downloads from tenant_downloads to 10000")
	case l.DownloadMinRate < 1 || l.DownloadMinRate > 1<<30:
		return errors.New("limits.download_min_rate must be from 1 to 1073741824 bytes per second")
	}
	return nil
}

// validLogName reports whether name can name a signed-note key and start
// a checkpoint's origin line.
func validLogName(name string) bool {
	if name == "" || len(name) > 100 {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r == '+' || r == 0x7f || r > 0x7e {
			return false
		}
	}
	return true
}

func (c Config) validate() error {
	if c.RetentionInterval < time.Second {
		return errors.New("retention_interval (AUDEX_RETENTION_INTERVAL) must be at least 1s")
	}
	if c.RateLimit.PerSecond < 0 || c.RateLimit.PerSecond > 1e6 || math.IsNaN(c.RateLimit.PerSecond) || c.RateLimit.Burst < 0 || c.RateLimit.Burst > 1e6 {
		return errors.New("rate_limit (AUDEX_RATE_LIMIT, AUDEX_RATE_LIMIT_BURST): per_second from 0 (no limit) to 1000000, burst from 0 (per_second rounded up) to 1000000")
	}
	if c.SummaryInterval < time.Second {
		return errors.New("summary_interval (AUDEX_SUMMARY_INTERVAL) must be at least 1s")
	}
	if c.ReadMaxLag < 100*time.Millisecond || c.ReadMaxLag > time.Hour {
		return errors.New("read_max_lag (AUDEX_READ_MAX_LAG) must be from 100ms to 1h")
	}
	for i, u := range c.ReadDatabaseURLs {
		if !strings.Contains(u, "://") {
			return fmt.Errorf("read_database_url (AUDEX_READ_DATABASE_URL): item %d is not a postgres:// URL", i+1)
		}
	}
	if c.SealInterval < time.Second {
		return errors.New("seal_interval (AUDEX_SEAL_INTERVAL) must be at least 1s")
	}
	if !validLogName(c.LogName) {
		return errors.New("log_name (AUDEX_LOG_NAME) must be 1 to 100 printable characters without spaces or +")
	}
	if c.StreamMinInterval < time.Second || c.StreamMinInterval > 24*time.Hour || c.StreamMinInterval%time.Second != 0 {
		return errors.New("stream_min_interval (AUDEX_STREAM_MIN_INTERVAL) must be whole seconds from 1s to 24h")
	}
	switch {
	case c.Exports.Concurrency < 1 || c.Exports.Concurrency > 64:
		return errors.New("exports.concurrency (AUDEX_EXPORT_CONCURRENCY) must be from 1 to 64")
	case c.Exports.PartMaxRecords < 1 || c.Exports.PartMaxRecords > audex.MaxPartMaxRecords:
		return fmt.Errorf("exports.part_max_records must be from 1 to %d", audex.MaxPartMaxRecords)
	case c.Exports.PartMaxBytes < audex.MinPartMaxBytes || c.Exports.PartMaxBytes > audex.MaxPartMaxBytes:
		return errors.New("exports.part_max_bytes must be from 1 MiB to 1 GiB")
	case c.Exports.MinPartMaxRecords < 1 || c.Exports.MinPartMaxRecords > c.Exports.PartMaxRecords:
		return errors.New("exports.min_part_max_records must be from 1 to exports.part_max_records")
	case c.Exports.MaxActivePerTenant < 1 || c.Exports.MaxActivePerTenant > 100000:
		return errors.New("exports.max_active_per_tenant must be from 1 to 100000")
	case c.Exports.RunningPerTenant < 1 || c.Exports.RunningPerTenant > 1000:
		return errors.New("exports.running_per_tenant must be from 1 to 1000")
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	if c.CursorSecret != "" && len(c.CursorSecret) < 32 {
		return errors.New("AUDEX_CURSOR_SECRET must be at least 32 characters")
	}
	seen := map[string]bool{}
	for i, d := range c.Destinations {
		switch {
		case d.Name == "":
			return fmt.Errorf("destinations[%d]: name is required", i)
		case seen[d.Name]:
			return fmt.Errorf("destinations[%d]: name %q is used twice", i, d.Name)
		case d.Type != "s3" && d.Type != "gcs" && d.Type != "azure_blob" && d.Type != "file" && d.Type != "webhook":
			return fmt.Errorf("destinations[%d] (%s): type must be s3, gcs, azure_blob, file or webhook", i, d.Name)
		case d.Type == "webhook":
			if err := d.validateWebhook(); err != nil {
				return fmt.Errorf("destinations[%d] (%s): %w", i, d.Name, err)
			}
		case d.Bucket == "":
			return fmt.Errorf("destinations[%d] (%s): bucket is required", i, d.Name)
		case len(d.AllowedHosts) > 0:
			return fmt.Errorf("destinations[%d] (%s): allowed_hosts applies to type webhook only", i, d.Name)
		}
		if err := d.validateCredentials(); err != nil {
			return fmt.Errorf("destinations[%d] (%s): %w", i, d.Name, err)
		}
		seen[d.Name] = true
	}
	return nil
}
