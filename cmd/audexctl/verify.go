package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
)

func (c *cli) verifyCommand() *cobra.Command {
	return group("verify", "Check saved checkpoints, proofs, and exports or stream batches where they are, offline with the verifier keys",
		c.verifyManifestCommand(), c.verifyCheckpointCommand(), c.verifyEventCommand(), c.verifyConsistencyCommand())
}

// readCheckpoint reads the saved signed checkpoint of file and checks its
// signature with keys.
func readCheckpoint(file string, keys []string) (integrity.Checkpoint, error) {
	msg, err := os.ReadFile(file)
	if err != nil {
		return integrity.Checkpoint{}, usageError(fmt.Sprintf("checkpoint file: %v", err))
	}
	cp, err := integrity.OpenCheckpoint(msg, keys)
	if err != nil {
		return cp, fmt.Errorf("%s does not verify: %w", file, err)
	}
	return cp, nil
}

// readJSON decodes the JSON of file into v.
func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return usageError(err.Error())
	}
	if err := json.Unmarshal(data, v); err != nil {
		return usageError(fmt.Sprintf("%s: not the JSON asked for: %v", file, err))
	}
	return nil
}

// offlineCommand is a verify command that needs the verifier keys of
// --keys and its nargs arguments, and no server.
func offlineCommand(use, short string, nargs int, run func(keys, args []string) error) *cobra.Command {
	var keysFile string
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs)}
	addKeysFlag(cmd, &keysFile)
	cmd.RunE = action(func(_ *cobra.Command, args []string) error {
		keys, err := verifierKeys(keysFile)
		if err != nil {
			return err
		}
		return run(keys, args)
	})
	return cmd
}

func (c *cli) verifyCheckpointCommand() *cobra.Command {
	return offlineCommand("checkpoint FILE --keys FILE", "Check a saved checkpoint's signature and print what it says", 1,
		func(keys, args []string) error {
			cp, err := readCheckpoint(args[0], keys)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: signed: %d leaves, root %s\n", cp.Origin, cp.Size, cp.Root)
			return nil
		})
}

func (c *cli) verifyEventCommand() *cobra.Command {
	return offlineCommand("event EVENT_FILE PROOF_FILE CHECKPOINT_FILE --keys FILE",
		"Check a saved event (the body of GET /v1/audit/events/{id}) against its saved inclusion proof and checkpoint", 3,
		func(keys, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageError(err.Error())
			}
			var proof audex.InclusionProof
			if err := readJSON(args[1], &proof); err != nil {
				return err
			}
			cp, err := readCheckpoint(args[2], keys)
			if err != nil {
				return err
			}
			if err := integrity.CheckInclusion(cp, bytes.TrimSuffix(data, []byte("\n")), proof); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			fmt.Fprintf(c.stdout, "%s: ok, leaf %d of the tree of %d (%s)\n", args[0], proof.LeafIndex, cp.Size, cp.Origin)
			return nil
		})
}

func (c *cli) verifyConsistencyCommand() *cobra.Command {
	return offlineCommand("consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF_FILE --keys FILE",
		"Check with a saved consistency proof that the log only grew between two saved checkpoints", 3,
		func(keys, args []string) error {
			old, err := readCheckpoint(args[0], keys)
			if err != nil {
				return err
			}
			cur, err := readCheckpoint(args[1], keys)
			if err != nil {
				return err
			}
			var proof audex.ConsistencyProof
			if err := readJSON(args[2], &proof); err != nil {
				return err
			}
			if err := integrity.CheckConsistency(old, cur, proof); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "%s: the tree of %d leaves is a prefix of the tree of %d: ok\n", cur.Origin, old.Size, cur.Size)
			return nil
		})
}

func (c *cli) verifyManifestCommand() *cobra.Command {
	var keysFile, folder, destination string
	cmd := &cobra.Command{
		Use:   "manifest KEY --keys FILE [--destination NAME | --folder DIR]",
		Short: "Check an export or a stream batch where it is, against the integrity log, with only the verifier keys",
		Long: `Check the manifest at KEY (an export's manifest.json or a stream batch's
batch-NNNNNN-manifest.json) and everything it names, offline: no server is
asked. It checks
  - the manifest's signature (KEY.sig) with the verifier keys of --keys;
  - each part's size and SHA-256;
  - the checkpoint's signature, and that the leaves object with the
    manifest's compact ranges makes the checkpoint's root;
  - each record: its canonical encoding (an NDJSON line, a CSV or Parquet
    row's event encoded) must be a leaf of the manifest's range, once;
  - each leaf of the range that is no record: deleted by audex (a signed
    deletion record in the log lists it), left out by the filters, or
    MISSING (deleted behind audex's back).
Prints a line per object and a verdict; exits 1 when anything does not
check, naming what and where. Records are read from NDJSON and CSV parts
(gzipped or not) and from Parquet parts.

The objects are read as export verify reads them: from the configured
destination --destination (default "local", with the configuration that
AUDEX_CONFIG names), or from --folder, with the keys relative to it.`,
		Args: cobra.ExactArgs(1),
	}
	addKeysFlag(cmd, &keysFile)
	cmd.Flags().StringVar(&folder, "folder", "", "read the objects from this folder, the keys relative to it")
	cmd.Flags().StringVar(&destination, "destination", "local", "read the objects from this configured destination")
	cmd.MarkFlagsMutuallyExclusive("folder", "destination")
	cmd.RunE = action(func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		keys, err := verifierKeys(keysFile)
		if err != nil {
			return err
		}
		open := folderObjects(folder)
		if folder == "" {
			if open, err = c.destinationObjects(ctx, destination); err != nil {
				return err
			}
		}
		problems, err := c.verifyManifest(ctx, open, args[0], keys)
		if err != nil {
			return err
		}
		if len(problems) > 0 {
			for _, p := range problems {
				fmt.Fprintln(c.stdout, "PROBLEM: "+p)
			}
			return fmt.Errorf("%s: %d problems: it is not what audex signed", args[0], len(problems))
		}
		fmt.Fprintf(c.stdout, "%s: ok\n", args[0])
		return nil
	})
	return cmd
}

// signedManifest is what verify reads of a manifest, an export's or a
// stream batch's.
type signedManifest struct {
	Format string             `json:"format"` // an export's; a batch's parts say theirs by name
	Files  []audex.ExportFile `json:"files"`
	Log    *audex.ManifestLog `json:"log"`
}

// verifyManifest checks the manifest at key and what it names, printing a
// line for each object, and returns the problems found; the error is for
// what stops the check.
func (c *cli) verifyManifest(ctx context.Context, open objectOpener, key string, keys []string) ([]string, error) {
	data, err := readObject(ctx, open, key)
	if err != nil {
		return nil, err
	}
	var problems []string
	sig, err := readObject(ctx, open, key+".sig")
	origin := ""
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s.sig: %v: the manifest is not signed", key, err))
	} else if origin, err = integrity.OpenManifestSignature(sig, data, keys); err != nil {
		problems = append(problems, fmt.Sprintf("%s: %v", key, err))
	} else {
		fmt.Fprintf(c.stdout, "%s: signed (%s)\n", key, origin)
	}
	var m signedManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return append(problems, fmt.Sprintf("%s: not a manifest: %v", key, err)), nil
	}
	var records int64
	for _, f := range m.Files {
		records += f.Records
	}
	if m.Log == nil {
		if records > 0 {
			problems = append(problems, key+": it says nothing of the integrity log (written by a server without log keys?)")
		}
		return problems, nil
	}
	check, err := c.openLogCheck(ctx, open, *m.Log, keys)
	if err != nil {
		return append(problems, err.Error()), nil
	}
	for _, f := range m.Files {
		// A batch's parts say their format by name.
		format := m.Format
		if format == "" {
			format = strings.TrimPrefix(path.Ext(strings.TrimSuffix(f.Key, ".gz")), ".")
		}
		unit := map[string]string{"parquet": "row", "csv": "record"}[format]
		if unit == "" {
			unit = "line"
		}
		record := func(n int, data []byte) { check.Record(fmt.Sprintf("%s %s %d", f.Key, unit, n), data) }
		if p := verifyPart(ctx, open, f, format, record); len(p) > 0 {
			problems = append(problems, f.Key+": CHANGED: "+strings.Join(p, "; "))
		}
	}
	v := check.Verdict()
	if origin != "" && origin != v.Checkpoint.Origin {
		problems = append(problems, fmt.Sprintf("%s: signed for %s, its checkpoint is of %s", key, origin, v.Checkpoint.Origin))
	}
	fmt.Fprintf(c.stdout, "leaves %d to %d of the checkpoint of %d leaves (%s): %d records read, %d of them leaves\n",
		v.FirstLeaf, v.EndLeaf-1, v.Checkpoint.Size, v.Checkpoint.Origin, v.Records, v.Matched)
	deleters := make([]string, 0, len(v.Deleted))
	for by := range v.Deleted {
		deleters = append(deleters, by)
	}
	sort.Strings(deleters)
	for _, by := range deleters {
		fmt.Fprintf(c.stdout, "deleted by audex: %d leaves, by %s\n", v.Deleted[by], by)
	}
	if v.Excluded > 0 {
		fmt.Fprintf(c.stdout, "left out by the filters: %d leaves\n", v.Excluded)
	}
	return append(problems, v.Problems...), nil
}

// openLogCheck reads the leaves object of m, checking its size and
// SHA-256, into a LogCheck.
func (c *cli) openLogCheck(ctx context.Context, open objectOpener, m audex.ManifestLog, keys []string) (*integrity.LogCheck, error) {
	file, err := open(ctx, m.Leaves.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot open: %v", m.Leaves.Key, err)
	}
	defer file.Close()
	hash := sha256.New()
	stored := &countingReader{r: io.TeeReader(file, hash)}
	check, err := integrity.NewLogCheck(m, bufio.NewReader(stored), keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", m.Leaves.Key, err)
	}
	if sum := hex.EncodeToString(hash.Sum(nil)); sum != m.Leaves.SHA256 || stored.n != m.Leaves.SizeBytes {
		return nil, fmt.Errorf("%s: CHANGED: sha256 %s, the manifest says %s", m.Leaves.Key, sum, m.Leaves.SHA256)
	}
	fmt.Fprintf(c.stdout, "%s: ok (%d leaf hashes)\n", m.Leaves.Key, m.Leaves.Records)
	return check, nil
}

// readObject reads the whole object at key.
func readObject(ctx context.Context, open objectOpener, key string) ([]byte, error) {
	file, err := open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", key, err)
	}
	defer file.Close()
	return io.ReadAll(file)
}
