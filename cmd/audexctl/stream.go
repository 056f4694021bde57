package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/audex-dev/audex/client"
)

func (c *cli) streamCommand() *cobra.Command {
	return group("stream", "Create, follow, pause, resume, delete and verify export streams",
		c.streamCreateCommand(), c.streamListCommand(), c.streamStatusCommand(),
		c.streamChangeCommand("pause", "Pause a stream (it delivers nothing until resumed)", "paused"),
		c.streamChangeCommand("resume", "Resume a paused or failed stream after its last batch", "active"),
		c.streamIntervalCommand(), c.streamDeleteCommand(), c.streamBatchesCommand(), c.streamVerifyCommand())
}

func (c *cli) streamCreateCommand() *cobra.Command {
	var (
		req      client.StreamRequest
		start    string
		interval time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create [--start T] [--interval D] [filters]",
		Short: "Start a stream and print its id",
		Long: `Start a stream of the events that the filters select, delivered in batches
every --interval to a destination that the server's operator configured, and
print its id. Without --start it delivers the events received from now on;
with a past --start, every matching event received since then first (a
backfill).`,
		Args: cobra.NoArgs,
	}
	filters := addEventFilters(cmd)
	addDeliveryFlags(cmd, &req.Format, &req.Compression, &req.Destination, &req.Prefix)
	cmd.Flags().DurationVar(&interval, "interval", 0, "time between batches, whole seconds (default: the server's, 5m)")
	cmd.Flags().StringVar(&start, "start", "", "deliver the events received from this past time on (default: now)")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		for _, name := range []string{"since", "until"} {
			if _, ok := filters.value(name); ok {
				return usageError("a stream has no --" + name + ": it delivers events as they arrive (use --start to backfill)")
			}
		}
		if interval%time.Second != 0 {
			return usageError("--interval must be whole seconds")
		}
		req.Interval = interval
		if start != "" {
			t, err := parseTime("start", start)
			if err != nil {
				return err
			}
			req.Start = t
		}
		var err error
		if req.Filters, err = filters.body(); err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		st, err := cl.Streams.Create(cmd.Context(), req)
		if err != nil {
			return apiFailure("create stream", err)
		}
		fmt.Fprintln(c.stdout, st.ID)
		return nil
	})
	return cmd
}

func (c *cli) streamListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's streams, newest first",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "stream_id\tstatus\tdestination\tformat\tinterval\tlag\tbatches\tevents")
			for st, err := range cl.Streams.List(cmd.Context()) {
				if err != nil {
					return apiFailure("list streams", err)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%ds\t%.0fs\t%d\t%d\n", st.ID, st.Status, st.Destination.Name, st.Format,
					st.IntervalSeconds, st.LagSeconds, st.BatchesDelivered, st.EventsDelivered)
			}
			return tw.Flush()
		}),
	}
}

func (c *cli) streamStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Print a stream's status",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status route's JSON object")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		st, err := cl.Streams.Get(cmd.Context(), args[0])
		if err != nil {
			return apiFailure("get stream "+args[0], err)
		}
		return c.printStream(st, asJSON)
	})
	return cmd
}

// printStream writes a stream's status, as JSON or for people.
func (c *cli) printStream(st client.Stream, asJSON bool) error {
	if asJSON {
		out := json.NewEncoder(c.stdout)
		out.SetIndent("", "  ")
		return out.Encode(st)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "stream_id\t%s\n", st.ID)
	fmt.Fprintf(tw, "status\t%s\n", st.Status)
	fmt.Fprintf(tw, "format\t%s (compression %s)\n", st.Format, st.Compression)
	if len(st.Filters) > 0 && string(st.Filters) != "{}" {
		fmt.Fprintf(tw, "filters\t%s\n", st.Filters)
	}
	d := st.Destination
	fmt.Fprintf(tw, "destination\t%s (%s %s, prefix %q)\n", d.Name, d.Type, d.Bucket, d.Prefix)
	fmt.Fprintf(tw, "interval\t%ds\n", st.IntervalSeconds)
	fmt.Fprintf(tw, "start\t%s\n", st.Start.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "watermark\t%s (lag %.1fs)\n", st.Watermark.UTC().Format(time.RFC3339Nano), st.LagSeconds)
	fmt.Fprintf(tw, "delivered\t%d batches, %d events\n", st.BatchesDelivered, st.EventsDelivered)
	if st.LastBatchAt != nil {
		fmt.Fprintf(tw, "last_batch_at\t%s\n", st.LastBatchAt.UTC().Format(time.RFC3339Nano))
	}
	if st.Error != nil {
		fmt.Fprintf(tw, "error\t%s: %s\n", st.Error.Code, st.Error.Message)
	}
	fmt.Fprintf(tw, "created_at\t%s\n", st.CreatedAt.UTC().Format(time.RFC3339Nano))
	return tw.Flush()
}

// streamChangeCommand is a command that sets a stream's status.
func (c *cli) streamChangeCommand(use, short, status string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			return c.updateStream(cmd.Context(), args[0], client.StreamChange{Status: &status})
		}),
	}
}

func (c *cli) streamIntervalCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "interval ID DURATION",
		Short: "Change the time between a stream's batches (whole seconds, e.g. 10m)",
		Args:  cobra.ExactArgs(2),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(args[1])
			if err != nil || d%time.Second != 0 || d <= 0 {
				return usageError("DURATION must be whole seconds, e.g. 90s or 10m")
			}
			return c.updateStream(cmd.Context(), args[0], client.StreamChange{Interval: &d})
		}),
	}
}

// updateStream applies ch to stream id and prints its status.
func (c *cli) updateStream(ctx context.Context, id string, ch client.StreamChange) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	st, err := cl.Streams.Update(ctx, id, ch)
	if err != nil {
		return apiFailure("update stream "+id, err)
	}
	return c.printStream(st, false)
}

func (c *cli) streamDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Stop a stream for good (what it delivered stays)",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.Streams.Delete(cmd.Context(), args[0]); err != nil {
				return apiFailure("delete stream "+args[0], err)
			}
			fmt.Fprintf(c.stdout, "stream %s deleted\n", args[0])
			return nil
		}),
	}
}

func (c *cli) streamBatchesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "batches ID",
		Short: "List a stream's delivered batches, in sequence",
		Args:  cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "seq\tthrough\trecords\tparts\tmanifest_key\tmanifest_sha256")
			for b, err := range cl.Streams.Batches(cmd.Context(), args[0]) {
				if err != nil {
					return apiFailure("list batches of stream "+args[0], err)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", b.Seq, b.Through.UTC().Format(time.RFC3339Nano), b.RecordCount,
					len(b.Files), deref(b.ManifestKey), b.ManifestSHA256)
			}
			return tw.Flush()
		}),
	}
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func (c *cli) streamVerifyCommand() *cobra.Command {
	var folder, destination string
	cmd := &cobra.Command{
		Use:   "verify ID [--destination NAME | --folder DIR]",
		Short: "Check a stream's chain of batches where they were delivered",
		Long: `Check every delivered batch of a stream where it is: each batch's manifest
must be there, hash to the manifest_sha256 the server recorded, name the hash
of the batch before (the chain), and list the batch's parts; each part must be
there with the manifest's size, SHA-256 and record count (Parquet parts:
size and SHA-256). Prints one line per batch and names the first broken link;
exits 1 on any mismatch.

The objects are read from the stream's destination as the worker writes them
(AUDEX_CONFIG and the credentials its *_env settings name, as for export
verify); --destination names another configured destination, --folder reads
a local folder (a copy of the bucket) instead.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&folder, "folder", "", "read the objects from this folder, the keys relative to it")
	cmd.Flags().StringVar(&destination, "destination", "", "read the objects from this configured destination (default: the stream's)")
	cmd.MarkFlagsMutuallyExclusive("folder", "destination")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		cl, err := c.client()
		if err != nil {
			return err
		}
		st, err := cl.Streams.Get(ctx, args[0])
		if err != nil {
			return apiFailure("get stream "+args[0], err)
		}
		open := folderObjects(folder)
		if folder == "" {
			if destination == "" {
				destination = st.Destination.Name
			}
			if open, err = c.destinationObjects(ctx, destination); err != nil {
				return err
			}
		}
		var previous *string // the sha256 of the last manifest read
		var batches, records int64
		var broken string
		for b, err := range cl.Streams.Batches(ctx, st.ID) {
			if err != nil {
				return apiFailure("list batches of stream "+st.ID, err)
			}
			problems := verifyBatch(ctx, open, b, previous, st.Format)
			if len(problems) > 0 && broken == "" {
				broken = fmt.Sprintf("batch %d", b.Seq)
			}
			report(c.stdout, fmt.Sprintf("batch %06d", b.Seq), problems, fmt.Sprintf("ok (%d records, %d parts)", b.RecordCount, len(b.Files)))
			sum := b.ManifestSHA256
			previous = &sum
			batches++
			records += b.RecordCount
		}
		if broken != "" {
			return fmt.Errorf("stream %s: the chain breaks at %s", st.ID, broken)
		}
		fmt.Fprintf(c.stdout, "stream %s: %d batches, %d records, chain ok\n", st.ID, batches, records)
		return nil
	})
	return cmd
}

// verifyBatch checks batch b where it was delivered: its manifest's bytes
// hash to b's manifest_sha256, hold b and name previous (the manifest
// before's sha256); each part matches its entry. It returns what does not
// match.
func verifyBatch(ctx context.Context, open objectOpener, b client.StreamBatch, previous *string, format string) []string {
	if b.ManifestKey == nil {
		return []string{"the server recorded no manifest key"}
	}
	var problems []string
	file, err := open(ctx, *b.ManifestKey)
	if err != nil {
		return []string{fmt.Sprintf("manifest %s: cannot open: %v", *b.ManifestKey, err)}
	}
	data, err := io.ReadAll(file)
	file.Close()
	if err != nil {
		return []string{fmt.Sprintf("manifest %s: cannot read: %v", *b.ManifestKey, err)}
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != b.ManifestSHA256 {
		problems = append(problems, fmt.Sprintf("manifest sha256 %s, the server recorded %s", got, b.ManifestSHA256))
	}
	var stored client.StreamBatch
	if err := json.Unmarshal(data, &stored); err != nil {
		return append(problems, fmt.Sprintf("manifest %s: not a manifest: %v", *b.ManifestKey, err))
	}
	switch {
	case stored.Seq != b.Seq || stored.StreamID != b.StreamID:
		problems = append(problems, fmt.Sprintf("manifest is of batch %d of %s", stored.Seq, stored.StreamID))
	case !sameHash(stored.PreviousManifestSHA256, previous):
		problems = append(problems, fmt.Sprintf("manifest links to %s, the batch before hashes to %s", deref(stored.PreviousManifestSHA256), deref(previous)))
	case stored.RecordCount != b.RecordCount || len(stored.Files) != len(b.Files):
		problems = append(problems, "manifest's records or parts differ from the server's")
	}
	for _, f := range stored.Files {
		if p := verifyPart(ctx, open, f, format, nil); len(p) > 0 {
			problems = append(problems, f.Key+": "+strings.Join(p, ", "))
		}
	}
	return problems
}

func sameHash(a, b *string) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }
