package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/integrity"
)

func (c *cli) logCommand() *cobra.Command {
	return group("log", "Fetch and check the integrity log: verifier keys, signed checkpoints, proofs",
		c.logPublicKeyCommand(), c.logCheckpointCommand(), c.logProveCommand(), c.logConsistencyCommand())
}

func (c *cli) logPublicKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "public-key",
		Short: "Print the server's verifier keys, one per line (save them once: later checks read them with --keys)",
		Args:  cobra.NoArgs,
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			keys, err := cl.Log.PublicKeys(cmd.Context())
			if err != nil {
				return apiFailure("get the log's public keys", err)
			}
			fmt.Fprintln(c.stdout, strings.Join(keys, "\n"))
			return nil
		}),
	}
}

// addKeysFlag adds --keys, the file of the verifier keys to trust.
func addKeysFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "keys", "", "file of the verifier keys to trust, one per line (`audexctl log public-key` prints them); required")
}

// verifierKeys reads the verifier keys of the file at path.
func verifierKeys(path string) ([]string, error) {
	if path == "" {
		return nil, usageError("--keys is required: the verifier keys to trust (save `audexctl log public-key` once)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError(fmt.Sprintf("--keys: %v", err))
	}
	keys := strings.Fields(string(data))
	if len(keys) == 0 {
		return nil, usageError("--keys: " + path + " holds no key")
	}
	return keys, nil
}

// logCheck returns the verifier keys of keysFile and a client: what every
// check of the log needs.
func (c *cli) logCheck(keysFile string) ([]string, *client.Client, error) {
	keys, err := verifierKeys(keysFile)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.client()
	return keys, cl, err
}

// signedCheckpoint returns the checkpoint of file (a saved signed note),
// or else the server's of size (0: the latest), with its note, once its
// signature checks with keys.
func (c *cli) signedCheckpoint(ctx context.Context, cl *client.Client, file string, size int64, keys []string) (integrity.Checkpoint, []byte, error) {
	var note []byte
	var err error
	if file != "" {
		if note, err = os.ReadFile(file); err != nil {
			return integrity.Checkpoint{}, nil, usageError(fmt.Sprintf("checkpoint file: %v", err))
		}
	} else if note, err = cl.Log.Checkpoint(ctx, size); err != nil {
		return integrity.Checkpoint{}, nil, apiFailure("get the checkpoint", err)
	}
	cp, err := integrity.OpenCheckpoint(note, keys)
	if err != nil {
		return cp, note, fmt.Errorf("the checkpoint does not verify: %w", err)
	}
	return cp, note, nil
}

func (c *cli) logCheckpointCommand() *cobra.Command {
	var keysFile string
	var size int64
	cmd := &cobra.Command{
		Use:   "checkpoint --keys FILE [--size N]",
		Short: "Print the tenant's latest signed checkpoint (or the one of tree size N) once its signature checks",
		Long: `Fetch the tenant's signed checkpoint, check its signature with the verifier
keys of --keys, and print it as it came (save it to a file: log prove and
log consistency take it later). Exits 1 when the signature does not check.`,
		Args: cobra.NoArgs,
	}
	addKeysFlag(cmd, &keysFile)
	cmd.Flags().Int64Var(&size, "size", 0, "the tree size of the checkpoint (default: the latest)")
	cmd.RunE = action(func(cmd *cobra.Command, _ []string) error {
		keys, cl, err := c.logCheck(keysFile)
		if err != nil {
			return err
		}
		_, note, err := c.signedCheckpoint(cmd.Context(), cl, "", size, keys)
		if err != nil {
			return err
		}
		_, err = c.stdout.Write(note)
		return err
	})
	return cmd
}

func (c *cli) logProveCommand() *cobra.Command {
	var keysFile, checkpointFile string
	cmd := &cobra.Command{
		Use:   "prove ID... --keys FILE [--checkpoint FILE]",
		Short: "Check that the events the server serves are the ones its signed log holds",
		Long: `For each event id: fetch the event as the server serves it now and its
inclusion proof, and check that the event's canonical encoding is the leaf
that the proof ties to the checkpoint's signed root. The checkpoint is the
one saved in --checkpoint (a client that keeps one proves against what it
saw then), else the server's latest; its signature is checked with the
verifier keys of --keys first. Prints a line per event; exits 1 when any
does not check (a changed event, a forged proof, a checkpoint that does not
verify). A deleted event cannot be fetched, and is reported so.`,
		Args: cobra.MinimumNArgs(1),
	}
	addKeysFlag(cmd, &keysFile)
	cmd.Flags().StringVar(&checkpointFile, "checkpoint", "", "a saved signed checkpoint to prove against (default: the server's latest)")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		keys, cl, err := c.logCheck(keysFile)
		if err != nil {
			return err
		}
		cp, _, err := c.signedCheckpoint(ctx, cl, checkpointFile, 0, keys)
		if err != nil {
			return err
		}
		failed := 0
		for _, id := range args {
			leaf, problem := proveEvent(ctx, cl, id, cp)
			if problem != "" {
				failed++
				fmt.Fprintf(c.stdout, "%s: %s\n", id, problem)
				continue
			}
			fmt.Fprintf(c.stdout, "%s: ok, leaf %d of the tree of %d (%s)\n", id, leaf, cp.Size, cp.Origin)
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d events do not check against the checkpoint of %d", failed, len(args), cp.Size)
		}
		return nil
	})
	return cmd
}

// proveEvent checks event id as the server serves it against checkpoint
// cp, and returns its leaf index, or what does not check.
func proveEvent(ctx context.Context, cl *client.Client, id string, cp integrity.Checkpoint) (int64, string) {
	e, err := cl.Events.Get(ctx, id)
	if err != nil {
		return 0, apiFailure("get the event", err).Error()
	}
	p, err := cl.Log.Proof(ctx, id, cp.Size)
	if err != nil {
		return 0, apiFailure("get its proof", err).Error()
	}
	if err := integrity.CheckInclusion(cp, integrity.LeafData(&e), p); err != nil {
		return p.LeafIndex, err.Error()
	}
	return p.LeafIndex, ""
}

func (c *cli) logConsistencyCommand() *cobra.Command {
	var keysFile string
	cmd := &cobra.Command{
		Use:   "consistency OLD_CHECKPOINT [NEW_CHECKPOINT] --keys FILE",
		Short: "Check that the log only grew since a saved checkpoint",
		Long: `Check that the tree of a saved checkpoint is a prefix of a newer one (a
second saved file, else the server's latest): both signatures with the
verifier keys of --keys, the same origin, and the server's consistency
proof between them. Exits 1 when the log was rewritten, shrank, or a
checkpoint does not verify.`,
		Args: cobra.RangeArgs(1, 2),
	}
	addKeysFlag(cmd, &keysFile)
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		keys, cl, err := c.logCheck(keysFile)
		if err != nil {
			return err
		}
		old, _, err := c.signedCheckpoint(ctx, cl, args[0], 0, keys)
		if err != nil {
			return fmt.Errorf("%s: %w", args[0], err)
		}
		newFile := ""
		if len(args) == 2 {
			newFile = args[1]
		}
		cur, _, err := c.signedCheckpoint(ctx, cl, newFile, 0, keys)
		if err != nil {
			return err
		}
		if cur.Size < old.Size {
			return fmt.Errorf("the log SHRANK: the newer checkpoint holds %d leaves, the saved one %d", cur.Size, old.Size)
		}
		p, err := cl.Log.Consistency(ctx, old.Size, cur.Size)
		if err != nil {
			return apiFailure("get the consistency proof", err)
		}
		if err := integrity.CheckConsistency(old, cur, p); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: the tree of %d leaves is a prefix of the tree of %d: ok\n", cur.Origin, old.Size, cur.Size)
		return nil
	})
	return cmd
}
