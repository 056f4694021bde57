package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/audex-dev/audex/client"
)

func (c *cli) eventsCommand() *cobra.Command {
	return group("events", "List and follow audit events", c.eventsListCommand(), c.eventsTailCommand())
}

// filterParams are the list filters taken as flags of the same names, in
// docs/api.md's order; --action is apart since it may be repeated.
var filterParams = []struct{ name, usage string }{
	{"since", "events that occurred at or after this time (RFC 3339, or a date: 2026-04-01)"},
	{"until", "events that occurred before this time (RFC 3339 or a date)"},
	{"action_prefix", "events whose action starts with this"},
	{"actor_id", "events of this actor"},
	{"actor_type", "events of actors of this type"},
	{"target_id", "events on this target"},
	{"target_type", "events on targets of this type"},
	{"resource_prefix", "events whose resource starts with this"},
	{"success", "true or false: successful or failed events"},
	{"source_ip", "events from this address or CIDR range"},
	{"request_id", "events of this request"},
}

// eventFilters are the filter flags of a command.
type eventFilters struct {
	cmd     *cobra.Command
	actions []string
	values  map[string]*string // by parameter name
}

func addEventFilters(cmd *cobra.Command) *eventFilters {
	f := &eventFilters{cmd: cmd, values: map[string]*string{}}
	cmd.Flags().SortFlags = false // the filters first, in docs/api.md's order
	cmd.Flags().StringArrayVar(&f.actions, "action", nil, "events of this action (repeat it or separate actions with commas for several)")
	for _, p := range filterParams {
		f.values[p.name] = cmd.Flags().String(p.name, "", p.usage)
	}
	return f
}

// query returns the filters that were given, as list query parameters
// that the server validates.
func (f *eventFilters) query() url.Values {
	q := url.Values{}
	if len(f.actions) > 0 {
		q["action"] = slices.Clone(f.actions)
	}
	for name, v := range f.values {
		if f.cmd.Flags().Changed(name) {
			q.Set(name, *v)
		}
	}
	return q
}

// value returns the flag's value and whether it was given.
func (f *eventFilters) value(name string) (string, bool) {
	return *f.values[name], f.cmd.Flags().Changed(name)
}

// body returns the filters as an export's body takes them (since and
// until are not filters there).
func (f *eventFilters) body() (client.Filters, error) {
	var out client.Filters
	for _, a := range f.actions {
		out.Actions = append(out.Actions, strings.Split(a, ",")...)
	}
	for name, dst := range map[string]*string{"action_prefix": &out.ActionPrefix, "actor_id": &out.ActorID, "actor_type": &out.ActorType,
		"target_id": &out.TargetID, "target_type": &out.TargetType, "resource_prefix": &out.ResourcePrefix,
		"source_ip": &out.SourceIP, "request_id": &out.RequestID} {
		*dst = *f.values[name]
	}
	if v, ok := f.value("success"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			return out, usageError(fmt.Sprintf("--success %q: want true or false", v))
		}
		out.Success = &b
	}
	return out, nil
}

func (c *cli) eventsListCommand() *cobra.Command {
	var (
		asJSON bool
		limit  int
		order  string
	)
	cmd := &cobra.Command{
		Use:   "list [filters]",
		Short: "List events, newest first, following cursors to the end",
		Long: `List the events that the filters select, newest first (--order asc: oldest
first), as a table (occurred_at, action, actor, target, id) or with --json as
one event object per line. All pages are read unless --limit bounds the count.
Filters are the API's list parameters: --action read --since 2026-04-01.`,
		Args: cobra.NoArgs,
	}
	filters := addEventFilters(cmd)
	cmd.Flags().StringVar(&order, "order", "", "desc (newest first, the default) or asc")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON event object per line")
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many events (0: all)")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		if limit < 0 {
			return usageError("--limit must be 0 (all) or more")
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		q := filters.query()
		if cmd.Flags().Changed("order") {
			q.Set("order", order)
		}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(min(limit, 1000)))
		}
		out := newEventPrinter(c.stdout, asJSON)
		n := 0
		for ev, err := range cl.Events.ListQuery(cmd.Context(), q) {
			if err != nil {
				return apiFailure("list events", err)
			}
			if err := out.print(ev); err != nil {
				return err
			}
			if n++; n == limit {
				break
			}
		}
		return out.flush()
	})
	return cmd
}

// tableBlock is how many rows of a table are aligned together: a long
// list is written a block at a time instead of held in memory.
const tableBlock = 1000

// eventPrinter writes events as a table with a header, or as JSON lines.
type eventPrinter struct {
	w      io.Writer
	asJSON bool
	table  *tabwriter.Writer
	rows   int
}

func newEventPrinter(w io.Writer, asJSON bool) *eventPrinter {
	p := &eventPrinter{w: w, asJSON: asJSON}
	if !asJSON {
		p.table = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(p.table, "occurred_at\taction\tactor\ttarget\tid")
	}
	return p
}

func (p *eventPrinter) print(ev client.Event) error {
	if p.asJSON {
		line, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(line, '\n'))
		return err
	}
	fmt.Fprintf(p.table, "%s\t%s\t%s\t%s\t%s\n", formatTime(ev.OccurredAt), ev.Action, party(ev.Actor.Type, &ev.Actor.ID), target(ev.Target), ev.ID)
	if p.rows++; p.rows%tableBlock == 0 {
		return p.flush()
	}
	return nil
}

// flush writes the rows held for alignment.
func (p *eventPrinter) flush() error {
	if p.table == nil {
		return nil
	}
	return p.table.Flush()
}

// party shows an actor or a target as type:id, or id when it has no type.
func party(typ, id *string) string {
	switch {
	case id == nil:
		return "-"
	case typ == nil || *typ == "":
		return *id
	}
	return *typ + ":" + *id
}

func target(t *client.Target) string {
	if t == nil {
		return "-"
	}
	return party(t.Type, t.ID)
}

func (c *cli) eventsTailCommand() *cobra.Command {
	var (
		asJSON   bool
		last     int
		interval time.Duration
		lookback time.Duration
	)
	cmd := &cobra.Command{
		Use:   "tail [filters]",
		Short: "Print the events that exist, then new ones as they arrive",
		Long: `Print the events that the filters select, oldest first (with --last N only
the newest N of them, 0 for none), then poll every --interval for new ones
and print them as they arrive, until interrupted.

Events are followed by occurred_at. Each poll reads again the last
--lookback before the newest event printed and leaves out the events printed
already, so that an event whose ingest committed late, or whose producer's
clock is a little behind, is printed once, late; an event that arrives with an
occurred_at older than that window is not printed.`,
		Args: cobra.NoArgs,
	}
	filters := addEventFilters(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON event object per line")
	cmd.Flags().IntVar(&last, "last", -1, "print only the newest N existing events (default: all)")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "pause between two polls")
	cmd.Flags().DurationVar(&lookback, "lookback", 10*time.Second, "how far before the newest printed event each poll looks again")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		switch {
		case interval <= 0:
			return usageError("--interval must be positive")
		case lookback < 0:
			return usageError("--lookback must not be negative")
		case last < -1:
			return usageError("--last must be 0 or more")
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		t := &tailer{events: cl.Events, filters: filters.query(), lookback: lookback, out: newEventPrinter(c.stdout, asJSON), seen: map[string]time.Time{}}
		err = t.run(cmd.Context(), last, interval)
		if cmd.Context().Err() != nil {
			// Interrupted: the normal end of a tail.
			return t.out.flush()
		}
		return err
	})
	return cmd
}

// tailer follows the events of a filter. It prints each once, in the order
// they are found: the newest printed occurred_at is tracked, and each poll
// asks, oldest first, for the events since lookback before it, leaving out
// those in seen (every event printed within the window) and those before
// floor.
type tailer struct {
	events   *client.EventsService
	filters  url.Values // the user's filters, since and until included
	lookback time.Duration
	out      *eventPrinter

	since  time.Time            // the user's --since, if given
	newest time.Time            // the newest occurred_at printed or skipped
	seen   map[string]time.Time // ids printed at or after newest-lookback, with their occurred_at
	floor  *client.Event        // with --last: events before this one are not printed
}

// run prints the existing events (the newest last of them when last >= 0),
// then polls every interval until ctx ends.
func (t *tailer) run(ctx context.Context, last int, interval time.Duration) error {
	if err := t.existing(ctx, last); err != nil {
		return err
	}
	if since, ok := t.filters["since"]; ok {
		// The server took it already; parsed here to bound the polls.
		var err error
		if t.since, err = parseTime("since", since[0]); err != nil {
			return err
		}
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		if err := t.poll(ctx); err != nil {
			return err
		}
	}
}

// existing prints the events that exist now, or the newest last of them.
func (t *tailer) existing(ctx context.Context, last int) error {
	if last < 0 {
		return t.list(ctx, t.filters)
	}
	q := t.query()
	q.Set("order", "desc")
	q.Set("limit", strconv.Itoa(min(max(last, 1), 1000)))
	var newest []client.Event
	for ev, err := range t.events.ListQuery(ctx, q) {
		if err != nil {
			return apiFailure("list events", err)
		}
		newest = append(newest, ev)
		if len(newest) >= last {
			break
		}
	}
	if len(newest) == 0 {
		return nil
	}
	if last == 0 {
		// Nothing to print: the newest event only marks where new ones start.
		t.floor = &newest[0]
		t.mark(newest[0])
		return nil
	}
	slices.Reverse(newest)
	if len(newest) == last {
		t.floor = &newest[0]
	}
	for _, ev := range newest {
		t.mark(ev)
		if err := t.out.print(ev); err != nil {
			return err
		}
	}
	return t.out.flush()
}

// poll prints the events that arrived since the last poll.
func (t *tailer) poll(ctx context.Context) error {
	q := t.query()
	if !t.newest.IsZero() {
		since := t.newest.Add(-t.lookback)
		if since.Before(t.since) {
			since = t.since
		}
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	return t.list(ctx, q)
}

// list prints the events of q (not modified), oldest first, that were not
// printed yet.
func (t *tailer) list(ctx context.Context, q url.Values) error {
	q = maps.Clone(q)
	q.Set("order", "asc")
	q.Set("limit", "1000")
	printed := 0
	for ev, err := range t.events.ListQuery(ctx, q) {
		if err != nil {
			return apiFailure("list events", err)
		}
		if _, ok := t.seen[ev.ID]; ok || (t.floor != nil && before(ev, *t.floor)) {
			continue
		}
		t.mark(ev)
		if err := t.out.print(ev); err != nil {
			return err
		}
		if printed++; printed%tableBlock == 0 {
			t.forget()
		}
	}
	t.forget()
	return t.out.flush()
}

// forget drops from seen the events before the next poll's since: no
// poll lists them again. (Events are listed oldest first, so the rest of
// a list does not reach them either.)
func (t *tailer) forget() {
	cutoff := t.newest.Add(-t.lookback)
	for id, at := range t.seen {
		if at.Before(cutoff) {
			delete(t.seen, id)
		}
	}
}

// query returns a copy of the user's filters to change.
func (t *tailer) query() url.Values { return maps.Clone(t.filters) }

// mark records ev as printed.
func (t *tailer) mark(ev client.Event) {
	t.seen[ev.ID] = ev.OccurredAt
	if ev.OccurredAt.After(t.newest) {
		t.newest = ev.OccurredAt
	}
}

// before reports whether a comes before b in the list's order: by
// occurred_at, then by id (bytewise, as the server sorts them).
func before(a, b client.Event) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.Before(b.OccurredAt)
	}
	return a.ID < b.ID
}
