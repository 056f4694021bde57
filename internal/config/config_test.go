package config_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/config"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audex.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("DefaultsNeedNothing", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Load(envOf(nil))
		require.NoError(t, err)
		require.Equal(t, config.DefaultDatabaseURL, cfg.DatabaseURL)
		require.Equal(t, "127.0.0.1:8080", cfg.Listen)
		require.Equal(t, 24*time.Hour, cfg.RetentionInterval)
		require.Equal(t, []config.Destination{{Name: "local", Type: "file", Bucket: "./data/exports"}}, cfg.Destinations)
		require.Equal(t, 30*time.Second, cfg.SummaryInterval)
		require.Equal(t, time.Minute, cfg.StreamMinInterval)
		require.Zero(t, cfg.RateLimit.PerSecond, "no rate limit unless asked")
	})

	t.Run("RateLimitAndSummaryIntervalFromFileAndEnvironment", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "rate_limit: {per_second: 50, burst: 200}\nsummary_interval: 5s\nstream_min_interval: 10s\n")
		cfg, err := config.Load(envOf(map[string]string{"AUDEX_CONFIG": path, "AUDEX_RATE_LIMIT": "12.5"}))
		require.NoError(t, err)
		require.Equal(t, config.RateLimit{PerSecond: 12.5, Burst: 200}, cfg.RateLimit)
		require.Equal(t, 5*time.Second, cfg.SummaryInterval)
		require.Equal(t, 10*time.Second, cfg.StreamMinInterval)
		cfg, err = config.Load(envOf(map[string]string{"AUDEX_CONFIG": path, "AUDEX_STREAM_MIN_INTERVAL": "2s"}))
		require.NoError(t, err)
		require.Equal(t, 2*time.Second, cfg.StreamMinInterval, "the environment wins")
	})

	t.Run("ReadReplicasFromFileAndEnvironment", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Load(envOf(nil))
		require.NoError(t, err)
		require.Empty(t, cfg.ReadDatabaseURLs, "no replica unless asked")
		require.Equal(t, 10*time.Second, cfg.ReadMaxLag)
		path := writeFile(t, "read_database_url: postgres://r1/audex, postgres://r2/audex\nread_max_lag: 2s\n")
		cfg, err = config.Load(envOf(map[string]string{"AUDEX_CONFIG": path}))
		require.NoError(t, err)
		require.Equal(t, []string{"postgres://r1/audex", "postgres://r2/audex"}, cfg.ReadDatabaseURLs)
		require.Equal(t, 2*time.Second, cfg.ReadMaxLag)
		cfg, err = config.Load(envOf(map[string]string{"AUDEX_CONFIG": path, "AUDEX_READ_DATABASE_URL": "postgres://r3/audex,", "AUDEX_READ_MAX_LAG": "500ms"}))
		require.NoError(t, err)
		require.Equal(t, []string{"postgres://r3/audex"}, cfg.ReadDatabaseURLs, "the environment wins; empty items are dropped")
		require.Equal(t, 500*time.Millisecond, cfg.ReadMaxLag)

		// Errors name the setting and never echo a URL, which may hold a
		// password.
		_, err = config.Load(envOf(map[string]string{"AUDEX_READ_DATABASE_URL": "postgres://r1/audex,host=r2 password=hunter2"}))
		require.ErrorContains(t, err, "AUDEX_READ_DATABASE_URL")
		require.NotContains(t, err.Error(), "hunter2")
		_, err = config.Load(envOf(map[string]string{"AUDEX_READ_MAX_LAG": "10ms"}))
		require.ErrorContains(t, err, "read_max_lag")
		_, err = config.Load(envOf(map[string]string{"AUDEX_READ_MAX_LAG": "soon"}))
		require.ErrorContains(t, err, "AUDEX_READ_MAX_LAG")
	})

	t.Run("LimitsTheFileLeavesOutKeepTheirDefaults", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "limits: {summary_timeout: 3s, tenant_requests: 4}\nexports: {running_per_tenant: 2}\n")
		cfg, err := config.Load(envOf(map[string]string{"AUDEX_CONFIG": path}))
		require.NoError(t, err)
		want := config.DefaultLimits
		want.SummaryTimeout, want.TenantRequests = config.Duration(3*time.Second), 4
		require.Equal(t, want, cfg.Limits)
		require.Equal(t, 2, cfg.Exports.RunningPerTenant)
		require.Equal(t, config.DefaultExports.MaxActivePerTenant, cfg.Exports.MaxActivePerTenant)
		require.Equal(t, config.DefaultExports.MinPartMaxRecords, cfg.Exports.MinPartMaxRecords)
	})

	t.Run("EnvironmentWinsOverTheFile", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, "listen: 127.0.0.1:9999\nretention_interval: 1h\ndatabase_url: postgres://file/db\n")
		cfg, err := config.Load(envOf(map[string]string{"AUDEX_CONFIG": path, "AUDEX_LISTEN": "127.0.0.1:7000"}))
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:7000", cfg.Listen)
		require.Equal(t, time.Hour, cfg.RetentionInterval)
		require.Equal(t, "postgres://file/db", cfg.DatabaseURL)
	})

	t.Run("RetentionIntervalFromOneSecond", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Load(envOf(map[string]string{"AUDEX_RETENTION_INTERVAL": "1s"}))
		require.NoError(t, err)
		require.Equal(t, time.Second, cfg.RetentionInterval)
		path := writeFile(t, "retention_interval: 30s\n")
		cfg, err = config.Load(envOf(map[string]string{"AUDEX_CONFIG": path}))
		require.NoError(t, err)
		require.Equal(t, 30*time.Second, cfg.RetentionInterval)
	})

	t.Run("DestinationsComeFromTheFile", func(t *testing.T) {
		t.Parallel()
		path := writeFile(t, `
destinations:
  - name: archive
    type: s3
    bucket: audit-archive
    prefix: exports
    region: us-east-1
    endpoint: http://127.0.0.1:9000
    tenants: ["*"]
`)
		cfg, err := config.Load(envOf(map[string]string{"AUDEX_CONFIG": path}))
		require.NoError(t, err)
		require.Len(t, cfg.Destinations, 1)
		require.Equal(t, "audit-archive", cfg.Destinations[0].Bucket)
	})

	for name, tc := range map[string]struct {
		file string
		env  map[string]string
		want string
	}{
		"UnknownKey":                    {file: "lisen: x\n", want: "lisen"},
		"BadInterval":                   {file: "retention_interval: daily\n", want: "retention_interval"},
		"BadIntervalEnv":                {env: map[string]string{"AUDEX_RETENTION_INTERVAL": "soon"}, want: "AUDEX_RETENTION_INTERVAL"},
		"SubSecondRetentionInterval":    {env: map[string]string{"AUDEX_RETENTION_INTERVAL": "999ms"}, want: "retention_interval (AUDEX_RETENTION_INTERVAL) must be at least 1s"},
		"ZeroRetentionIntervalInFile":   {file: "retention_interval: 0s\n", want: "retention_interval"},
		"DestinationType":               {file: "destinations: [{name: x, type: ftp, bucket: b}]\n", want: "type must be"},
		"DestinationTwice":              {file: "destinations: [{name: x, type: file, bucket: a}, {name: x, type: file, bucket: b}]\n", want: "used twice"},
		"DestinationNoBucket":           {file: "destinations: [{name: x, type: s3}]\n", want: "bucket is required"},
		"ShortCursorSecret":             {env: map[string]string{"AUDEX_CURSOR_SECRET": "short"}, want: "AUDEX_CURSOR_SECRET"},
		"BadRateLimit":                  {env: map[string]string{"AUDEX_RATE_LIMIT": "fast"}, want: "AUDEX_RATE_LIMIT"},
		"NegativeRateLimit":             {file: "rate_limit: {per_second: -1}\n", want: "rate_limit"},
		"BadSummaryInterval":            {env: map[string]string{"AUDEX_SUMMARY_INTERVAL": "1ms"}, want: "summary_interval"},
		"StreamMinIntervalUnderASecond": {env: map[string]string{"AUDEX_STREAM_MIN_INTERVAL": "500ms"}, want: "stream_min_interval"},
		"StreamMinIntervalOverADay":     {env: map[string]string{"AUDEX_STREAM_MIN_INTERVAL": "25h"}, want: "stream_min_interval"},
		"StreamMinIntervalFractional":   {env: map[string]string{"AUDEX_STREAM_MIN_INTERVAL": "1.5s"}, want: "stream_min_interval"},
		"TenantRequestsOfTheWholePool":  {file: "limits: {pool_size: 8, tenant_requests: 8}\n", want: "tenant_requests"},
		"ZeroBudget":                    {file: "limits: {list_timeout: 0s}\n", want: "positive Go duration"},
		"FloorAboveTheDefaultPart":      {file: "exports: {min_part_max_records: 200000}\n", want: "min_part_max_records"},
		"UnknownLimit":                  {file: "limits: {tenant_request: 2}\n", want: "tenant_request"},
	} {
		t.Run("Rejects"+name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.file != "" {
				env["AUDEX_CONFIG"] = writeFile(t, tc.file)
			}
			_, err := config.Load(envOf(env))
			require.ErrorContains(t, err, tc.want)
		})
	}
}
