package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/audex-dev/audex/client"
)

// barWidth is how many characters the progress bar has.
const barWidth = 24

// progressView shows an export's progress as Wait reads it: on a terminal,
// one line redrawn in place with \r (a bar, the percent, the records, the
// rate and the time left); elsewhere (a file, a pipe, a CI log) one plain
// line per change, without \r.
type progressView struct {
	w        io.Writer
	terminal bool
	now      func() time.Time

	start        time.Time // when the first status was read
	startRecords int64     // the records exported then
	lastChange   string    // plain lines: the state last printed
	drawn        int       // terminal: the width of the line on screen
}

func newProgressView(w io.Writer, terminal bool, now func() time.Time) *progressView {
	return &progressView{w: w, terminal: terminal, now: now}
}

// update shows e, the export's latest status.
func (v *progressView) update(e client.Export) {
	now := v.now()
	if v.start.IsZero() {
		v.start, v.startRecords = now, e.Progress.RecordsExported
	}
	records, total := e.Progress.RecordsExported, e.EstimatedRecords
	if e.RecordCount != nil {
		total = *e.RecordCount
	}
	percent := e.Progress.Percent
	if e.Status == "completed" {
		percent = 100
	}
	// The server estimates large exports; an estimate below the records
	// exported already says nothing about the total.
	of := "?"
	if total >= records {
		of = strconv.FormatInt(total, 10)
	}
	elapsed := now.Sub(v.start)
	rate, timeLeft := "- records/s", "ETA -"
	if done := records - v.startRecords; done > 0 && elapsed > 0 {
		perSecond := float64(done) / elapsed.Seconds()
		rate = fmt.Sprintf("%.0f records/s", perSecond)
		if total > records {
			timeLeft = "ETA " + roughDuration(time.Duration(float64(total-records)/perSecond*float64(time.Second)))
		}
	}
	switch {
	case e.Finished():
		timeLeft = "in " + roughDuration(elapsed)
	case total == records && records > 0:
		timeLeft = "ETA <1s"
	}

	if !v.terminal {
		change := fmt.Sprintf("%s %d %d", e.Status, records, e.Progress.PartsWritten)
		if change == v.lastChange {
			return
		}
		v.lastChange = change
		fmt.Fprintf(v.w, "export %s: %s %d%%, %d/%s records, %d parts, %s, %s\n",
			e.ID, e.Status, percent, records, of, e.Progress.PartsWritten, rate, timeLeft)
		return
	}
	filled := min(max(percent, 0), 100) * barWidth / 100
	line := fmt.Sprintf("%-9s [%s%s] %3d%%  %d/%s records  %s  %s", e.Status,
		strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), percent, records, of, rate, timeLeft)
	// Spaces cover what is left of a longer line drawn before.
	fmt.Fprintf(v.w, "\r%s%s", line, strings.Repeat(" ", max(v.drawn-len(line), 0)))
	v.drawn = len(line)
}

// finish ends the line redrawn on a terminal.
func (v *progressView) finish() {
	if v.terminal && v.drawn > 0 {
		fmt.Fprintln(v.w)
		v.drawn = 0
	}
}

// roughDuration shows d rounded for people: 1.2s below a minute, 3m4s above.
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
