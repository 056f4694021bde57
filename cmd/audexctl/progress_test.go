package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/client"
)

// exportAt is an export of 250 estimated records in the given state.
func exportAt(status string, records int64, percent, parts int) client.Export {
	e := client.Export{ID: "exp_1", Status: status, EstimatedRecords: 250}
	e.Progress.RecordsExported, e.Progress.Percent, e.Progress.PartsWritten = records, percent, parts
	if status == "completed" {
		e.RecordCount = &records
	}
	return e
}

func TestProgressView(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	steps := []struct {
		at time.Duration
		e  client.Export
	}{
		{0, exportAt("queued", 0, 0, 0)},
		{time.Second, exportAt("running", 100, 40, 1)},
		{1500 * time.Millisecond, exportAt("running", 100, 40, 1)},
		{2 * time.Second, exportAt("running", 300, 99, 3)}, // past the estimate
		{2500 * time.Millisecond, exportAt("completed", 400, 100, 4)},
	}
	show := func(terminal bool) string {
		var out bytes.Buffer
		now := t0
		v := newProgressView(&out, terminal, func() time.Time { return now })
		for _, s := range steps {
			now = t0.Add(s.at)
			v.update(s.e)
		}
		v.finish()
		return out.String()
	}

	t.Run("ATerminalGetsOneLineRedrawn", func(t *testing.T) {
		out := show(true)
		require.True(t, strings.HasSuffix(out, "\n"))
		require.Equal(t, []string{
			"",
			"queued    [------------------------]   0%  0/250 records  - records/s  ETA -",
			"running   [#########---------------]  40%  100/250 records  100 records/s  ETA 1.5s",
			"running   [#########---------------]  40%  100/250 records  67 records/s  ETA 2.3s ",
			"running   [#######################-]  99%  300/? records  150 records/s  ETA -    ",
			"completed [########################] 100%  400/400 records  160 records/s  in 2.5s\n",
		}, strings.Split(out, "\r"), "a shorter line covers the end of the longer one before it")
	})

	t.Run("ElsewhereOneLinePerChange", func(t *testing.T) {
		require.Equal(t, "export exp_1: queued 0%, 0/250 records, 0 parts, - records/s, ETA -\n"+
			"export exp_1: running 40%, 100/250 records, 1 parts, 100 records/s, ETA 1.5s\n"+
			"export exp_1: running 99%, 300/? records, 3 parts, 150 records/s, ETA -\n"+
			"export exp_1: completed 100%, 400/400 records, 4 parts, 160 records/s, in 2.5s\n", show(false))
	})
}
