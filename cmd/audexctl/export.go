package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/sinks"
)

func (c *cli) exportCommand() *cobra.Command {
	return group("export", "Create, follow and verify export jobs",
		c.exportCreateCommand(), c.exportStatusCommand(), c.exportVerifyCommand(), c.exportDestinationsCommand())
}

func (c *cli) exportDestinationsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destinations",
		Short: "List the destinations this tenant may export and stream to",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		list, err := cl.Exports.Destinations(cmd.Context())
		if err != nil {
			return apiFailure("list destinations", err)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tTYPE\tTAKES")
		for _, d := range list {
			takes := "exports, streams"
			if !d.Exports {
				takes = "streams"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, d.Type, takes)
		}
		return tw.Flush()
	})
	return cmd
}

// How often export create --wait reads the export's status: from
// firstPoll, growing to maxPoll.
const (
	exportFirstPoll = 200 * time.Millisecond
	exportMaxPoll   = time.Second
)

// addDeliveryFlags adds the flags that say what an export or a stream
// writes and where: --format, --compression, --destination, --prefix.
func addDeliveryFlags(cmd *cobra.Command, format, compression, destination, prefix *string) {
	cmd.Flags().StringVar(format, "format", "jsonl", "jsonl, csv or parquet")
	cmd.Flags().StringVar(compression, "compression", "", "none (the server's default) or gzip (not with parquet)")
	cmd.Flags().StringVar(destination, "destination", "local", "name of a destination the server's operator configured")
	cmd.Flags().StringVar(prefix, "prefix", "", "sub-prefix under the destination's prefix")
}

func (c *cli) exportCreateCommand() *cobra.Command {
	var (
		req  client.ExportRequest
		wait bool
	)
	cmd := &cobra.Command{
		Use:   "create --since T [--until T] [filters]",
		Short: "Create an export job and print its id",
		Long: `Create an export job of the events that occurred in [--since, --until) and
that the filters select, written to a destination that the server's operator
configured, and print its id. Without --until the export ends now (the
time of the command, to the second), which it says on stderr. With --wait, follow its progress on stderr (a
bar on a terminal, one line per change elsewhere) and print its status and
manifest when it ends; an export that failed or was cancelled exits 1.`,
		Args: cobra.NoArgs,
	}
	filters := addEventFilters(cmd)
	addDeliveryFlags(cmd, &req.Format, &req.Compression, &req.Destination, &req.Prefix)
	cmd.Flags().IntVar(&req.PartMaxRecords, "part_max_records", 0, "most records in a part (default: the server's)")
	cmd.Flags().Int64Var(&req.PartMaxBytes, "part_max_bytes", 0, "most bytes in a part before compression (default: the server's)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the export to end, showing its progress")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		for _, name := range []string{"since", "until"} {
			v, ok := filters.value(name)
			if !ok && name == "until" {
				req.Until = c.now().UTC().Truncate(time.Second)
				fmt.Fprintf(c.stderr, "audexctl: no --until: the export covers events until now, %s\n", req.Until.Format(time.RFC3339))
				continue
			}
			if !ok {
				return usageError("--since is required: an export covers [--since, --until)")
			}
			t, err := parseTime(name, v)
			if err != nil {
				return err
			}
			if name == "since" {
				req.Since = t
			} else {
				req.Until = t
			}
		}
		var err error
		if req.Filters, err = filters.body(); err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		created, err := cl.Exports.Create(ctx, req)
		if err != nil {
			return apiFailure("create export", err)
		}
		fmt.Fprintln(c.stdout, created.ID)
		if !wait {
			return nil
		}
		view := newProgressView(c.stderr, c.isTerminal(c.stderr), c.now)
		e, err := cl.Exports.Wait(ctx, created.ID, client.WaitOptions{Progress: view.update, FirstPoll: exportFirstPoll, MaxPoll: exportMaxPoll})
		view.finish()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting; export %s goes on on the server (audexctl export status %s): %w", created.ID, created.ID, ctx.Err())
			}
			return apiFailure("wait for export "+created.ID, err)
		}
		if err := printExport(c.stdout, e); err != nil {
			return err
		}
		return exportOutcome(e)
	})
	return cmd
}

// exportOutcome is nil for a completed export, else an error that says
// how it ended.
func exportOutcome(e client.Export) error {
	switch {
	case e.Status == "completed":
		return nil
	case e.Error != nil:
		return fmt.Errorf("export %s %s: %s: %s", e.ID, e.Status, e.Error.Code, e.Error.Message)
	}
	return fmt.Errorf("export %s %s", e.ID, e.Status)
}

func (c *cli) exportStatusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ID",
		Short: "Print an export job's status and manifest",
		Args:  cobra.ExactArgs(1),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status route's JSON object")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		e, err := c.getExport(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if asJSON {
			out := json.NewEncoder(c.stdout)
			out.SetIndent("", "  ")
			return out.Encode(e)
		}
		return printExport(c.stdout, e)
	})
	return cmd
}

// printExport writes an export's status, and its parts when it has some,
// for people.
func printExport(w io.Writer, e client.Export) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "export_id\t%s\n", e.ID)
	fmt.Fprintf(tw, "status\t%s\n", e.Status)
	fmt.Fprintf(tw, "format\t%s (compression %s)\n", e.Format, e.Compression)
	fmt.Fprintf(tw, "range\t%s to %s\n", e.Since.UTC().Format(time.RFC3339Nano), e.Until.UTC().Format(time.RFC3339Nano))
	if len(e.Filters) > 0 && string(e.Filters) != "{}" {
		fmt.Fprintf(tw, "filters\t%s\n", e.Filters)
	}
	d := e.Destination
	fmt.Fprintf(tw, "destination\t%s (%s %s, prefix %q)\n", d.Name, d.Type, d.Bucket, d.Prefix)
	fmt.Fprintf(tw, "progress\t%d%%, %d of about %d records, %d parts\n", e.Progress.Percent, e.Progress.RecordsExported, e.EstimatedRecords, e.Progress.PartsWritten)
	if e.RecordCount != nil {
		fmt.Fprintf(tw, "record_count\t%d\n", *e.RecordCount)
	}
	if e.ManifestKey != nil {
		fmt.Fprintf(tw, "manifest_key\t%s\n", *e.ManifestKey)
	}
	if !e.AsOf.IsZero() {
		fmt.Fprintf(tw, "as_of\t%s\n", e.AsOf.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "created_at\t%s\n", e.CreatedAt.UTC().Format(time.RFC3339Nano))
	if e.StartedAt != nil {
		fmt.Fprintf(tw, "started_at\t%s\n", e.StartedAt.UTC().Format(time.RFC3339Nano))
	}
	if e.CompletedAt != nil {
		fmt.Fprintf(tw, "completed_at\t%s\n", e.CompletedAt.UTC().Format(time.RFC3339Nano))
	}
	fmt.Fprintf(tw, "attempts\t%d\n", e.Attempts)
	if e.Error != nil {
		fmt.Fprintf(tw, "error\t%s: %s\n", e.Error.Code, e.Error.Message)
	}
	if len(e.Files) > 0 {
		fmt.Fprintln(tw, "\nkey\tsize_bytes\trecords\tsha256")
		for _, f := range e.Files {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", f.Key, f.SizeBytes, f.Records, f.SHA256)
		}
	}
	return tw.Flush()
}

func (c *cli) exportVerifyCommand() *cobra.Command {
	var folder, destination string
	cmd := &cobra.Command{
		Use:   "verify ID [--destination NAME | --folder DIR]",
		Short: "Check an export's part files against its manifest",
		Long: `Check the parts of a completed export where they are: each part must be
there at its key, with the manifest's size, SHA-256 and record count (lines
of JSONL; rows below the header of CSV; gzipped parts are read unzipped), and
manifest.json must hold the status route's manifest. Prints one line per part;
exits 1 on any mismatch.

By default the parts are read from the export's destination (S3, GCS, Azure
Blob or a folder) as the worker writes them: the destination of that name in
the configuration file that AUDEX_CONFIG names (the built-in "local" folder
without one), with the credentials its *_env settings name, read from this
command's environment. --destination names another configured destination;
--folder reads a local folder instead (a file destination's folder, or a
copy of a bucket), with the keys relative to it.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.Flags().StringVar(&folder, "folder", "", "read the parts from this folder, the keys relative to it")
	cmd.Flags().StringVar(&destination, "destination", "", "read the parts from this configured destination (default: the export's)")
	cmd.MarkFlagsMutuallyExclusive("folder", "destination")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		e, err := c.getExport(ctx, args[0])
		if err != nil {
			return err
		}
		if e.Status != "completed" {
			return fmt.Errorf("export %s is %s: only a completed export has a manifest to verify", e.ID, e.Status)
		}
		open := folderObjects(folder)
		if folder == "" {
			if destination == "" {
				destination = e.Destination.Name
			}
			if open, err = c.destinationObjects(ctx, destination); err != nil {
				return err
			}
		}
		bad := 0
		var records int64
		for _, f := range e.Files {
			problems := verifyPart(ctx, open, f, e.Format, nil)
			records += f.Records
			report(c.stdout, f.Key, problems, fmt.Sprintf("ok (%d records, %d bytes)", f.Records, f.SizeBytes))
			if len(problems) > 0 {
				bad++
			}
		}
		if e.ManifestKey != nil {
			problems := verifyManifest(ctx, open, *e.ManifestKey, e)
			report(c.stdout, *e.ManifestKey, problems, "ok")
			if len(problems) > 0 {
				bad++
			}
		}
		if e.RecordCount != nil && *e.RecordCount != records {
			return fmt.Errorf("export %s: its parts hold %d records, its record_count says %d", e.ID, records, *e.RecordCount)
		}
		if bad > 0 {
			return fmt.Errorf("export %s: %d of %d files do not match its manifest", e.ID, bad, len(e.Files)+1)
		}
		fmt.Fprintf(c.stdout, "export %s: %d parts, %d records: ok\n", e.ID, len(e.Files), records)
		return nil
	})
	return cmd
}

// objectOpener opens the object at an export's key for reading.
type objectOpener func(ctx context.Context, key string) (io.ReadCloser, error)

// folderObjects opens keys as files under folder; a key that would leave
// the folder is an error.
func folderObjects(folder string) objectOpener {
	return func(_ context.Context, key string) (io.ReadCloser, error) {
		rel := filepath.FromSlash(key)
		if !filepath.IsLocal(rel) {
			return nil, fmt.Errorf("key %q is not a path inside the folder", key)
		}
		return os.Open(filepath.Join(folder, rel))
	}
}

// destinationObjects opens keys in the configured destination name,
// through the sink the worker writes with.
func (c *cli) destinationObjects(ctx context.Context, name string) (objectOpener, error) {
	cfg, err := config.Load(c.getenv)
	if err != nil {
		return nil, fmt.Errorf("read the destinations' configuration: %w", err)
	}
	for _, d := range cfg.Destinations {
		if d.Name != name {
			continue
		}
		sink, err := sinks.New(ctx, sinks.FromDestination(d), c.getenv)
		if err != nil {
			return nil, fmt.Errorf("open destination %s: %w", name, err)
		}
		return sink.Open, nil
	}
	where := "the built-in configuration (AUDEX_CONFIG is not set)"
	if file := c.getenv("AUDEX_CONFIG"); file != "" {
		where = file
	}
	return nil, fmt.Errorf("destination %q is not in %s; name one with --destination, or read a copy with --folder", name, where)
}

// report writes one line about a file: ok, or what does not match.
func report(w io.Writer, key string, problems []string, ok string) {
	if len(problems) == 0 {
		fmt.Fprintf(w, "%s: %s\n", key, ok)
		return
	}
	fmt.Fprintf(w, "%s: %s\n", key, strings.Join(problems, "; "))
}

// verifyPart checks the part f of an export in format, in one read of its
// object, and returns what does not match its manifest entry (nothing when
// all does). record, when not nil, is given each record's canonical
// encoding with its number: a JSONL line without its newline, a Parquet
// row's event encoded.
func verifyPart(ctx context.Context, open objectOpener, f client.ExportFile, format string, record func(n int, b []byte)) []string {
	file, err := open(ctx, f.Key)
	if err != nil {
		return []string{fmt.Sprintf("cannot open: %v", err)}
	}
	defer file.Close()
	hash := sha256.New()
	stored := &countingReader{r: io.TeeReader(file, hash)}
	var records int64
	var countErr error
	if format == "parquet" {
		records, countErr = readParquetRecords(stored, record)
	} else {
		records, countErr = countRecords(stored, format, strings.HasSuffix(f.Key, ".gz"), record)
	}
	// Hash what the record reader did not need, such as a gzip trailer or
	// the rest of a file whose records could not be read.
	if _, err := io.Copy(io.Discard, stored); err != nil {
		return []string{fmt.Sprintf("cannot read: %v", err)}
	}
	var problems []string
	if stored.n != f.SizeBytes {
		problems = append(problems, fmt.Sprintf("size %d bytes, manifest says %d", stored.n, f.SizeBytes))
	}
	if sum := hex.EncodeToString(hash.Sum(nil)); sum != f.SHA256 {
		problems = append(problems, fmt.Sprintf("sha256 %s, manifest says %s", sum, f.SHA256))
	}
	switch {
	case format == "parquet" && record == nil:
		// Parquet's records are counted by readers of Parquet; the size and
		// SHA-256 cover every byte.
	case countErr != nil:
		problems = append(problems, fmt.Sprintf("records unreadable: %v", countErr))
	case records != f.Records:
		problems = append(problems, fmt.Sprintf("%d records, manifest says %d", records, f.Records))
	}
	return problems
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readParquetRecords gives record (when not nil) each event of the
// Parquet part read from r, canonically encoded, and returns how many it
// holds. Parquet is read from its end: the part goes to a temporary file
// first. Without record it reads nothing.
func readParquetRecords(r io.Reader, record func(n int, b []byte)) (int64, error) {
	if record == nil {
		return 0, nil
	}
	tmp, err := os.CreateTemp("", "audexctl-*.parquet")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r)
	if err != nil {
		return 0, err
	}
	var n int
	var buf []byte
	return format.ReadParquetPart(tmp, size, func(e *audex.Event) {
		n++
		buf = e.AppendJSON(buf[:0])
		record(n, buf)
	})
}

// countRecords counts the records of a part: lines of JSONL (a last line
// without its newline included) or CSV rows below the header row, given
// to line (a CSV row's event canonically encoded) when it is not nil.
func countRecords(r io.Reader, partFormat string, gzipped bool, line func(n int, b []byte)) (int64, error) {
	if gzipped {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return 0, err
		}
		defer gz.Close()
		r = gz
	}
	if partFormat == format.CSV {
		var n int
		var buf []byte
		return format.ReadCSVPart(r, func(e *audex.Event) {
			if n++; line != nil {
				buf = e.AppendJSON(buf[:0])
				line(n, buf)
			}
		})
	}
	lines := bufio.NewReaderSize(r, 256<<10)
	for n := 1; ; n++ {
		b, err := lines.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it whole.
			whole := bytes.Clone(b)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = lines.ReadSlice('\n')
				whole = append(whole, b...)
			}
			b = whole
		}
		if len(b) == 0 {
			n--
		} else if line != nil {
			line(n, bytes.TrimSuffix(b, []byte("\n")))
		}
		if errors.Is(err, io.EOF) {
			return int64(n), nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// verifyManifest checks that the manifest object at key holds the
// manifest of e, the export's status.
func verifyManifest(ctx context.Context, open objectOpener, key string, e client.Export) []string {
	file, err := open(ctx, key)
	if err != nil {
		return []string{fmt.Sprintf("cannot open: %v", err)}
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil {
		return []string{fmt.Sprintf("cannot read: %v", err)}
	}
	var stored client.Export
	if err := json.Unmarshal(data, &stored); err != nil {
		return []string{fmt.Sprintf("not a manifest: %v", err)}
	}
	var problems []string
	if stored.ID != e.ID {
		problems = append(problems, fmt.Sprintf("export_id %s, the server says %s", stored.ID, e.ID))
	}
	if stored.RecordCount == nil || e.RecordCount == nil || *stored.RecordCount != *e.RecordCount {
		problems = append(problems, "record_count differs from the server's")
	}
	if !slices.Equal(stored.Files, e.Files) {
		problems = append(problems, "its files differ from the server's manifest")
	}
	return problems
}

// getExport fetches export id's status for the status and verify commands.
func (c *cli) getExport(ctx context.Context, id string) (client.Export, error) {
	cl, err := c.client()
	if err != nil {
		return client.Export{}, err
	}
	e, err := cl.Exports.Get(ctx, id)
	if err != nil {
		return client.Export{}, apiFailure("get export "+id, err)
	}
	return e, nil
}
