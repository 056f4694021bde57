// Command audexctl is the command-line client of audex: it lists and
// follows events, creates, follows and verifies export jobs, purges events
// and reads and sets the retention policy. It talks to the server through
// the Go client package only and must not import the server's packages.
//
// Configuration: --url and --api-key, else AUDEX_URL and AUDEX_API_KEY.
// Exit codes: 0 success, 1 the API or the work failed, 2 a wrong command
// line or configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/audex-dev/audex/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the API answered an error, or the work failed
	exitUsage   = 2 // the command line or the configuration is wrong
)

// run runs audexctl with args (without the program name) and returns its
// exit code. Whether stderr is a terminal is asked of the operating system.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv, isTerminal: isTerminal, now: time.Now}
	return c.run(ctx, args)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// cli is one run of audexctl: where it writes, where it reads its
// environment, and how it tells a terminal (tests replace these).
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	isTerminal     func(io.Writer) bool
	now            func() time.Time

	// url and apiKey are the root command's flags.
	url, apiKey string
}

func (c *cli) run(ctx context.Context, args []string) int {
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(c.stderr, "audexctl: %v\n", err)
	if errors.As(err, new(*failure)) {
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "audexctl",
		Short: "Command-line client of the audex audit-log service",
		Long: `audexctl lists and follows audit events, runs and verifies export jobs,
purges events and manages the retention policy of an audex server.

The server and key come from --url and --api-key, else from the AUDEX_URL
and AUDEX_API_KEY environment variables (prefer the variable for the key:
command lines are visible to other users of the machine).

Flags that are API parameters or fields keep the API's names (--actor_id,
--part_max_records); the command line's own flags use dashes (--dry-run).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&c.url, "url", "", "server URL, e.g. http://127.0.0.1:8080 (default $AUDEX_URL)")
	root.PersistentFlags().StringVar(&c.apiKey, "api-key", "", "API key (default $AUDEX_API_KEY)")
	root.AddCommand(c.eventsCommand(), c.exportCommand(), c.streamCommand(), c.logCommand(), c.verifyCommand(), c.purgeCommand(), c.retentionCommand())
	return root
}

// group returns a command that only holds subcommands: without one it
// shows its help, with an unknown one it is a usage error.
func group(use, short string, subcommands ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(subcommands...)
	return cmd
}

// action adapts f to cobra's RunE: an error f returns is a failure (exit
// 1) unless it is a usageError (exit 2).
func action(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil || errors.As(err, new(usageError)) {
			return err
		}
		return &failure{err: err}
	}
}

// client returns a client of the configured server: flags win over the
// environment, and a missing URL or key is a usageError.
func (c *cli) client() (*client.Client, error) {
	url, key := c.url, c.apiKey
	if url == "" {
		url = c.getenv("AUDEX_URL")
	}
	if key == "" {
		key = c.getenv("AUDEX_API_KEY")
	}
	switch {
	case url == "":
		return nil, usageError("no server URL: set --url or AUDEX_URL")
	case key == "":
		return nil, usageError("no API key: set AUDEX_API_KEY (or --api-key)")
	}
	cl, err := client.New(url, key)
	if err != nil {
		return nil, usageError(fmt.Sprintf("--url or AUDEX_URL %q is not an http(s) URL", url))
	}
	return cl, nil
}

// usageError is a wrong command line or configuration (exit 2).
type usageError string

func (e usageError) Error() string { return string(e) }

// failure is an error of the API or of the work (exit 1).
type failure struct{ err error }

func (e *failure) Error() string { return e.err.Error() }
func (e *failure) Unwrap() error { return e.err }

// apiFailure describes err, the error of operation op: an API error as the
// server's code and message, anything else as it is. Neither holds the API
// key: the client sends it in a header only.
func apiFailure(op string, err error) error {
	var apiErr *client.Error
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := fmt.Sprintf("%s: %s: %s", op, apiErr.Code, apiErr.Message)
	if apiErr.Field != "" {
		msg += " (field " + apiErr.Field + ")"
	}
	return errors.New(msg)
}

// parseTime reads the time of flag name as the API takes times: RFC 3339
// with Z or an offset, or a date meaning midnight UTC.
func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t, err = time.Parse(time.DateOnly, v)
	}
	if err != nil {
		return time.Time{}, usageError(fmt.Sprintf("--%s %q: want an RFC 3339 time with Z or an offset (2026-04-20T00:00:00Z) or a date (2026-04-20)", name, v))
	}
	return t, nil
}

// formatTime writes a time as the tables show it: UTC, microseconds.
func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }
