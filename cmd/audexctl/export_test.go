package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/config"
	"github.com/audex-dev/audex/internal/sinks/sinktest"
)

// createArgs asks for an export of the 250 doc events in parts of 100.
var createArgs = []string{"export", "create", "--since", "2026-04-01", "--until", "2026-04-02", "--action_prefix", "doc.", "--part_max_records", "100", "--wait"}

func TestExport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	b.ingest(t, docs(250))
	var jsonlID, csvID string

	t.Run("CreateWaitPrintsPlainProgressLinesWhenNotATerminal", func(t *testing.T) {
		res := b.run(t, createArgs...)
		require.Equal(t, exitOK, res.code, res.stderr)
		out := lines(res.stdout)
		jsonlID = out[0]
		require.Regexp(t, `^exp_\w+$`, jsonlID)
		require.Contains(t, res.stdout, "status        completed\n")
		require.Contains(t, res.stdout, "record_count  250\n")
		require.Contains(t, res.stdout, jsonlID+"/part-00003.jsonl  ")

		require.NotContains(t, res.stderr, "\r")
		progress := lines(res.stderr)
		require.NotEmpty(t, progress)
		for _, line := range progress {
			require.Regexp(t, `^export `+jsonlID+`: (queued|running|completed) \d+%, \d+/\d+ records, \d+ parts, (-|\d+) records/s, (ETA|in) \S+$`, line)
		}
		require.Regexp(t, `: completed 100%, 250/250 records, 3 parts, .* records/s, in \S+$`, progress[len(progress)-1])
	})

	t.Run("CreateWaitDrawsABarOnATerminal", func(t *testing.T) {
		args := append(append([]string{}, createArgs...), "--format", "csv", "--compression", "gzip")
		res := runCLI(ctx, runOptions{env: b.env, terminal: true}, args...)
		require.Equal(t, exitOK, res.code, res.stderr)
		csvID = lines(res.stdout)[0]
		require.Contains(t, res.stdout, csvID+"/part-00001.csv.gz  ")

		require.True(t, strings.HasPrefix(res.stderr, "\r"), "%q", res.stderr)
		require.True(t, strings.HasSuffix(res.stderr, "\n"), "the bar's line ends when the export does: %q", res.stderr)
		redraws := strings.Split(strings.TrimSuffix(res.stderr, "\n"), "\r")[1:]
		for _, line := range redraws {
			require.Regexp(t, `^(queued|running|completed) +\[[#-]{24}\] +\d+%  \d+/\d+ records  (-|\d+) records/s  (ETA|in) \S+ *$`, line)
		}
		final := redraws[len(redraws)-1]
		require.Regexp(t, `^completed \[#{24}\] 100%  250/250 records  \d+ records/s  in \S+ *$`, final,
			"the first status read saw the export before it completed, so the rate is known")
	})

	t.Run("DestinationsListsWhereTheTenantMayExport", func(t *testing.T) {
		res := b.run(t, "export", "destinations")
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Regexp(t, `(?m)^NAME +TYPE +TAKES\nlocal +file +exports, streams$`, res.stdout)
	})

	t.Run("StatusPrintsTheExport", func(t *testing.T) {
		res := b.run(t, "export", "status", jsonlID)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "export_id     "+jsonlID+"\n")
		require.Contains(t, res.stdout, "status        completed\n")
		require.Contains(t, res.stdout, "format        jsonl (compression none)\n")
		require.Contains(t, res.stdout, "progress      100%, 250 of about 250 records, 3 parts\n")

		res = b.run(t, "export", "status", csvID, "--json")
		require.Equal(t, exitOK, res.code, res.stderr)
		var printed client.Export
		require.NoError(t, json.Unmarshal([]byte(res.stdout), &printed))
		want, err := b.client.Exports.Get(ctx, csvID)
		require.NoError(t, err)
		require.Equal(t, want.Files, printed.Files)
		require.Equal(t, "completed", printed.Status)
		require.Equal(t, "gzip", printed.Compression)

		res = b.run(t, "export", "status", "exp_nope")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "audexctl: get export exp_nope: not_found: ")
	})

	t.Run("VerifyPassesOnAnUntouchedExport", func(t *testing.T) {
		for _, id := range []string{jsonlID, csvID} {
			res := b.run(t, "export", "verify", id, "--folder", b.srv.Folder)
			require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
			out := lines(res.stdout)
			require.Len(t, out, 5, "3 parts, the manifest, the summary")
			for i, line := range out[:3] {
				require.Regexp(t, `^`+id+`/part-0000`+string(rune('1'+i))+`\.(jsonl|csv\.gz): ok \(\d+ records, \d+ bytes\)$`, line)
			}
			require.Equal(t, id+"/manifest.json: ok", out[3])
			require.Equal(t, "export "+id+": 3 parts, 250 records: ok", out[4])
		}
	})

	t.Run("VerifyReadsTheExportsDestinationByDefault", func(t *testing.T) {
		res := b.run(t, "export", "verify", jsonlID)
		require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
		require.Equal(t, "export "+jsonlID+": 3 parts, 250 records: ok", lines(res.stdout)[4])

		res = b.run(t, "export", "verify", jsonlID, "--destination", "elsewhere")
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, `audexctl: destination "elsewhere" is not in `+b.srv.ConfigPath)
		res = b.run(t, "export", "verify", jsonlID, "--destination", "local", "--folder", b.srv.Folder)
		require.Equal(t, exitUsage, res.code, "one source or the other")
	})

	t.Run("CreateWithoutUntilEndsNow", func(t *testing.T) {
		before := time.Now().UTC().Truncate(time.Second)
		res := b.run(t, "export", "create", "--since", "2026-04-01", "--action_prefix", "doc.")
		require.Equal(t, exitOK, res.code, res.stderr)
		e, err := b.client.Exports.Get(ctx, lines(res.stdout)[0])
		require.NoError(t, err)
		require.False(t, e.Until.Before(before), "until %s is the time of the command", e.Until)
		require.False(t, e.Until.After(time.Now()), "until %s is the time of the command", e.Until)
		require.Contains(t, res.stderr, "audexctl: no --until: the export covers events until now, "+e.Until.UTC().Format(time.RFC3339))
	})

	t.Run("VerifyFailsOnChangedParts", func(t *testing.T) {
		e, err := b.client.Exports.Get(ctx, jsonlID)
		require.NoError(t, err)
		part := func(i int) string { return filepath.Join(b.srv.Folder, filepath.FromSlash(e.Files[i].Key)) }
		data, err := os.ReadFile(part(1))
		require.NoError(t, err)
		data[10] ^= 1 // a byte flipped: same size, same lines
		require.NoError(t, os.WriteFile(part(1), data, 0o600))
		data, err = os.ReadFile(part(2))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(part(2), data[:len(data)/2], 0o600))

		res := b.run(t, "export", "verify", jsonlID, "--folder", b.srv.Folder)
		require.Equal(t, exitFailure, res.code)
		out := lines(res.stdout)
		require.Regexp(t, `part-00001\.jsonl: ok`, out[0])
		require.Regexp(t, `part-00002\.jsonl: sha256 [0-9a-f]{64}, manifest says `+e.Files[1].SHA256+`$`, out[1])
		require.Regexp(t, `part-00003\.jsonl: size \d+ bytes, manifest says \d+; sha256 [0-9a-f]{64}, manifest says [0-9a-f]{64}; \d+ records, manifest says 50$`, out[2])
		require.Contains(t, res.stderr, "audexctl: export "+jsonlID+": 2 of 4 files do not match its manifest")

		require.NoError(t, os.Remove(part(0)))
		res = b.run(t, "export", "verify", jsonlID, "--folder", b.srv.Folder)
		require.Equal(t, exitFailure, res.code)
		require.Regexp(t, `part-00001\.jsonl: cannot open: .*no such file`, lines(res.stdout)[0])
	})

	t.Run("VerifyFailsOnATruncatedGzipPart", func(t *testing.T) {
		e, err := b.client.Exports.Get(ctx, csvID)
		require.NoError(t, err)
		path := filepath.Join(b.srv.Folder, filepath.FromSlash(e.Files[0].Key))
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data[:len(data)-20], 0o600))
		res := b.run(t, "export", "verify", csvID, "--folder", b.srv.Folder)
		require.Equal(t, exitFailure, res.code)
		require.Regexp(t, `part-00001\.csv\.gz: size \d+ bytes, manifest says \d+; sha256 .*; records unreadable: record \d+: unexpected EOF$`, lines(res.stdout)[0])
		require.Regexp(t, `part-00002\.csv\.gz: ok`, lines(res.stdout)[1])
	})

	t.Run("AFailedExportExitsOneWithItsError", func(t *testing.T) {
		// Without its folder, the destination fails the export at once.
		away := b.srv.Folder + ".away"
		require.NoError(t, os.Rename(b.srv.Folder, away))
		res := b.run(t, createArgs...)
		require.NoError(t, os.Rename(away, b.srv.Folder))
		require.Equal(t, exitFailure, res.code, res.stderr)
		id := lines(res.stdout)[0]
		require.Regexp(t, `\nstatus +failed\n`, res.stdout)
		require.Contains(t, res.stderr, "audexctl: export "+id+" failed: bucket_not_found: bucket "+b.srv.Folder+" of destination local does not exist")

		res = b.run(t, "export", "verify", id, "--folder", b.srv.Folder)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "export "+id+" is failed: only a completed export has a manifest to verify")
	})

	t.Run("ABadFormatIsTheServersInvalidArgument", func(t *testing.T) {
		res := b.run(t, "export", "create", "--since", "2026-04-01", "--until", "2026-04-02", "--format", "xml")
		require.Equal(t, exitFailure, res.code)
		require.Regexp(t, regexp.QuoteMeta("audexctl: create export: invalid_argument: ")+`.*\(field format\)`, res.stderr)
		require.Empty(t, res.stdout)
	})
}

// TestExportVerifyReadsObjectStores verifies an export on MinIO straight
// from the bucket, with the configuration and credentials the worker uses,
// and finds an object changed behind audex's back.
func TestExportVerifyReadsObjectStores(t *testing.T) {
	t.Parallel()
	cfg, _ := sinktest.NewBucket(t, "s3")
	b := setupWith(t, []config.Destination{{Name: "lake", Type: "s3", Bucket: cfg.Bucket, Region: cfg.Region, Endpoint: cfg.Endpoint,
		AccessKeyIDEnv: cfg.AccessKeyIDEnv, SecretAccessKeyEnv: cfg.SecretAccessKeyEnv}})
	for _, name := range []string{cfg.AccessKeyIDEnv, cfg.SecretAccessKeyEnv} {
		b.env[name] = os.Getenv(name)
	}
	b.ingest(t, docs(250))
	res := b.run(t, append(createArgs, "--destination", "lake")...)
	require.Equal(t, exitOK, res.code, res.stderr)
	id := lines(res.stdout)[0]

	res = b.run(t, "export", "verify", id)
	require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
	require.Equal(t, "export "+id+": 3 parts, 250 records: ok", lines(res.stdout)[4])

	e, err := b.client.Exports.Get(t.Context(), id)
	require.NoError(t, err)
	admin := sinktest.S3Admin(t)
	obj, err := admin.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(e.Files[1].Key)})
	require.NoError(t, err)
	data, err := io.ReadAll(obj.Body)
	require.NoError(t, err)
	obj.Body.Close()
	data[10] ^= 1
	_, err = admin.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(e.Files[1].Key), Body: bytes.NewReader(data)})
	require.NoError(t, err)

	res = b.run(t, "export", "verify", id)
	require.Equal(t, exitFailure, res.code)
	out := lines(res.stdout)
	require.Regexp(t, `part-00001\.jsonl: ok`, out[0])
	require.Regexp(t, `part-00002\.jsonl: sha256 [0-9a-f]{64}, manifest says `+e.Files[1].SHA256+`$`, out[1])
	require.Contains(t, res.stderr, "audexctl: export "+id+": 1 of 4 files do not match its manifest")

	delete(b.env, cfg.SecretAccessKeyEnv)
	res = b.run(t, "export", "verify", id)
	require.Equal(t, exitFailure, res.code)
	require.Contains(t, res.stderr, "audexctl: open destination lake: ")
	require.Contains(t, res.stderr, "environment variable "+cfg.SecretAccessKeyEnv+" is empty or not set")
	require.NotContains(t, res.stdout+res.stderr, os.Getenv(cfg.SecretAccessKeyEnv), "no secret in the output")
}
