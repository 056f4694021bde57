package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

// purgePoll is how often purge --wait reads the purge's status.
const purgePoll = 500 * time.Millisecond

func (c *cli) purgeCommand() *cobra.Command {
	var (
		before       string
		dryRun, wait bool
	)
	cmd := &cobra.Command{
		Use:   "purge --before T [--dry-run | --wait]",
		Short: "Delete the events that occurred before a time",
		Long: `Delete this tenant's events that occurred strictly before --before. With
--dry-run, print how many events that would delete now and change nothing.
Otherwise create a purge job and print its id; with --wait, wait for it to end
and print how many events it deleted.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().StringVar(&before, "before", "", "delete the events that occurred before this time (RFC 3339 or a date; required)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only count the events a purge would delete")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the purge to end")
	_ = cmd.MarkFlagRequired("before")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "wait")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		t, err := parseTime("before", before)
		if err != nil {
			return err
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if dryRun {
			n, err := cl.Purges.DryRun(ctx, t)
			if err != nil {
				return apiFailure("purge dry run", err)
			}
			fmt.Fprintf(c.stdout, "would delete %d events (occurred before %s)\n", n, t.UTC().Format(time.RFC3339Nano))
			return nil
		}
		id, err := cl.Purges.Create(ctx, t)
		if err != nil {
			return apiFailure("create purge", err)
		}
		fmt.Fprintln(c.stdout, id)
		if !wait {
			return nil
		}
		p, err := cl.Purges.Wait(ctx, id, purgePoll)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("stopped waiting; purge %s goes on on the server: %w", id, ctx.Err())
		case err != nil:
			return apiFailure("wait for purge "+id, err)
		case p.Status != "completed":
			reason := "no reason given"
			if p.Error != nil {
				reason = *p.Error
			}
			return fmt.Errorf("purge %s %s after deleting %d events: %s", id, p.Status, p.Deleted, reason)
		}
		fmt.Fprintf(c.stdout, "purge %s completed: deleted %d events\n", id, p.Deleted)
		return nil
	})
	return cmd
}

func (c *cli) retentionCommand() *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "Print the retention policy",
		Args:  cobra.NoArgs,
	}
	get.RunE = action(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.client()
		if err != nil {
			return err
		}
		days, err := cl.Purges.Retention(cmd.Context())
		if err != nil {
			return apiFailure("get retention", err)
		}
		c.printRetention(days)
		return nil
	})

	var clear bool
	set := &cobra.Command{
		Use:   "set DAYS|none",
		Short: "Set the retention policy, or remove it with none or --clear",
		Long: `Keep events DAYS days (1 to 36500): a scheduled job purges the events older
than that. "none" or --clear removes the policy: events are kept forever.`,
		Args: cobra.MaximumNArgs(1),
	}
	set.Flags().BoolVar(&clear, "clear", false, "remove the policy: keep events forever")
	set.RunE = action(func(cmd *cobra.Command, args []string) error {
		var days *int
		switch {
		case clear && len(args) > 0:
			return usageError("give DAYS or --clear, not both")
		case clear:
		case len(args) == 0:
			return usageError("give DAYS, none or --clear")
		case args[0] == "none":
		default:
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return usageError(fmt.Sprintf("DAYS %q: want a whole number of days or none", args[0]))
			}
			days = &n
		}
		cl, err := c.client()
		if err != nil {
			return err
		}
		if err := cl.Purges.SetRetention(cmd.Context(), days); err != nil {
			return apiFailure("set retention", err)
		}
		c.printRetention(days)
		return nil
	})
	return group("retention", "Read and set the retention policy", get, set)
}

func (c *cli) printRetention(days *int) {
	if days == nil {
		fmt.Fprintln(c.stdout, "retain_days: none (events are kept forever)")
		return
	}
	fmt.Fprintf(c.stdout, "retain_days: %d\n", *days)
}
