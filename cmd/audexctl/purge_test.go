package main

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPurge(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.ingest(t, docs(250))

	t.Run("DryRunCountIsWhatThePurgeDeletes", func(t *testing.T) {
		before := "2026-04-01T01:40:00Z" // the first 100 events
		res := b.run(t, "purge", "--before", before, "--dry-run")
		require.Equal(t, exitOK, res.code, res.stderr)
		m := regexp.MustCompile(`^would delete (\d+) events \(occurred before 2026-04-01T01:40:00Z\)\n$`).FindStringSubmatch(res.stdout)
		require.NotNil(t, m, res.stdout)
		dryRun, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		require.Equal(t, 100, dryRun)

		res = b.run(t, "purge", "--before", before, "--wait")
		require.Equal(t, exitOK, res.code, res.stderr)
		out := lines(res.stdout)
		require.Len(t, out, 2)
		require.Regexp(t, `^prg_\w+$`, out[0])
		require.Equal(t, "purge "+out[0]+" completed: deleted "+m[1]+" events", out[1])

		res = b.run(t, "events", "list", "--action_prefix", "doc.", "--json")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Len(t, lines(res.stdout), 150)
	})

	t.Run("WithoutWaitPrintsTheID", func(t *testing.T) {
		res := b.run(t, "purge", "--before", "2026-04-01T02:00:00Z")
		require.Equal(t, exitOK, res.code, res.stderr)
		out := lines(res.stdout)
		require.Len(t, out, 1)
		p, err := b.client.Purges.Wait(ctx, out[0], 20*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "completed", p.Status)
		require.EqualValues(t, 20, p.Deleted)
	})

	t.Run("RetentionGetSetClear", func(t *testing.T) {
		get := func() string {
			res := b.run(t, "retention", "get")
			require.Equal(t, exitOK, res.code, res.stderr)
			return res.stdout
		}
		none := "retain_days: none (events are kept forever)\n"
		require.Equal(t, none, get())

		res := b.run(t, "retention", "set", "30")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Equal(t, "retain_days: 30\n", res.stdout)
		require.Equal(t, "retain_days: 30\n", get())
		days, err := b.client.Purges.Retention(ctx)
		require.NoError(t, err)
		require.Equal(t, 30, *days)

		res = b.run(t, "retention", "set", "none")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Equal(t, none, res.stdout)
		require.Equal(t, none, get())

		require.Equal(t, exitOK, b.run(t, "retention", "set", "365").code)
		res = b.run(t, "retention", "set", "--clear")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Equal(t, none, get())

		res = b.run(t, "retention", "set", "0")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "audexctl: set retention: invalid_argument: ")
		require.Contains(t, res.stderr, "(field retain_days)")
		require.Equal(t, none, get())
	})
}
