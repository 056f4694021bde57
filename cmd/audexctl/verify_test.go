package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/client"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/storetest"
)

// TestVerify attacks what audex stored and what it exported, and checks
// that `verify` names each attack from the exported objects and the
// verifier keys alone, while deletions that audex made verify as such.
func TestVerify(t *testing.T) {
	t.Parallel()
	skey := storetest.LogKey(t)
	keys, err := integrity.ParseKeys(skey)
	require.NoError(t, err)
	b := setupWith(t, nil, "AUDEX_SEAL_INTERVAL=1s", "AUDEX_STREAM_MIN_INTERVAL=1s", "AUDEX_LOG_KEY="+skey)
	ctx := t.Context()
	// Three ingests, so three arrival times: 60 events, 5 late ones of the
	// day before (outside the exports' range), 10 more.
	all := docs(70)
	b.ingest(t, all[:60])
	late := docs(5)
	for i := range late {
		late[i].ID = "late" + late[i].ID
		late[i].OccurredAt = late[i].OccurredAt.Add(-24 * time.Hour)
	}
	b.ingest(t, late)
	b.ingest(t, all[60:])
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(keysFile, []byte(strings.Join(keys.VerifierKeys(), "\n")+"\n"), 0o600))
	// export runs an export of every event and returns its manifest's key.
	export := func(t *testing.T) string {
		t.Helper()
		res := b.run(t, "export", "create", "--since", "2026-04-01", "--until", "2026-04-02", "--part_max_records", "20", "--wait")
		require.Equal(t, exitOK, res.code, res.stderr)
		e, err := b.client.Exports.Get(ctx, lines(res.stdout)[0])
		require.NoError(t, err)
		require.NotNil(t, e.ManifestKey)
		return *e.ManifestKey
	}
	verify := func(t *testing.T, key string) result {
		t.Helper()
		return b.run(t, "verify", "manifest", key, "--keys", keysFile)
	}
	// file is the path of an object of the local destination.
	file := func(key string) string { return filepath.Join(b.srv.Folder, filepath.FromSlash(key)) }
	manifestOf := func(t *testing.T, key string) audex.Export {
		t.Helper()
		data, err := os.ReadFile(file(key))
		require.NoError(t, err)
		var m audex.Export
		require.NoError(t, json.Unmarshal(data, &m))
		require.NotNil(t, m.Log, "the manifest says what the log holds")
		return m
	}
	first := export(t)

	t.Run("AnUntouchedExportVerifies", func(t *testing.T) {
		res := verify(t, first)
		require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stdout, first+": signed (")
		require.Regexp(t, `leaves \d+ to \d+ of the checkpoint of \d+ leaves \(audex/`+b.srv.Tenant+`\): 70 records read, 70 of them leaves\nleft out by the filters: 5 leaves\n`, res.stdout)
		require.Contains(t, res.stdout, first+": ok\n")
		require.NotContains(t, res.stdout, "PROBLEM")
	})

	t.Run("SavedCheckpointsProofsAndEventsVerifyOffline", func(t *testing.T) {
		save := func(name string, data []byte) string {
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, data, 0o600))
			return path
		}
		saveJSON := func(name string, v any) string {
			data, err := json.Marshal(v)
			require.NoError(t, err)
			return save(name, data)
		}
		oldNote, err := b.client.Log.Checkpoint(ctx, 0)
		require.NoError(t, err)
		old, err := integrity.OpenCheckpoint(oldNote, keys.VerifierKeys())
		require.NoError(t, err)
		b.ingest(t, []client.NewEvent{{ID: "offline", OccurredAt: start, Action: "doc.read", Actor: client.Actor{ID: "u0"}}})
		var newNote []byte
		require.Eventually(t, func() bool {
			newNote, err = b.client.Log.Checkpoint(ctx, 0)
			require.NoError(t, err)
			return !bytes.Equal(newNote, oldNote)
		}, 30*time.Second, 100*time.Millisecond, "the worker seals the new event")
		cur, err := integrity.OpenCheckpoint(newNote, keys.VerifierKeys())
		require.NoError(t, err)
		oldFile, newFile := save("old.checkpoint", oldNote), save("new.checkpoint", newNote)

		res := b.run(t, "verify", "checkpoint", newFile, "--keys", keysFile)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, fmt.Sprintf("audex/%s: signed: %d leaves, root ", b.srv.Tenant, cur.Size))

		e, err := b.client.Events.Get(ctx, "e00012")
		require.NoError(t, err)
		proof, err := b.client.Log.Proof(ctx, "e00012", cur.Size)
		require.NoError(t, err)
		eventFile, proofFile := save("event.json", integrity.LeafData(&e)), saveJSON("proof.json", proof)
		res = b.run(t, "verify", "event", eventFile, proofFile, newFile, "--keys", keysFile)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, fmt.Sprintf("ok, leaf %d of the tree of %d", proof.LeafIndex, cur.Size))
		e.Action = "doc.forged"
		res = b.run(t, "verify", "event", save("forged.json", integrity.LeafData(&e)), proofFile, newFile, "--keys", keysFile)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "CHANGED")

		consistency, err := b.client.Log.Consistency(ctx, old.Size, cur.Size)
		require.NoError(t, err)
		consistencyFile := saveJSON("consistency.json", consistency)
		res = b.run(t, "verify", "consistency", oldFile, newFile, consistencyFile, "--keys", keysFile)
		require.Equal(t, exitOK, res.code, res.stderr)
		require.Contains(t, res.stdout, "is a prefix of the tree of")
		res = b.run(t, "verify", "consistency", newFile, oldFile, consistencyFile, "--keys", keysFile)
		require.Equal(t, exitFailure, res.code)
		require.Contains(t, res.stderr, "SHRANK")
		res = b.run(t, "verify", "checkpoint", newFile)
		require.Equal(t, exitUsage, res.code)
	})

	t.Run("DeletionsByAudexVerifyAsAuthorised", func(t *testing.T) {
		id, err := b.client.Purges.Create(ctx, start) // the late ones
		require.NoError(t, err)
		p, err := b.client.Purges.Wait(ctx, id, 100*time.Millisecond)
		require.NoError(t, err)
		require.Equal(t, "completed", p.Status)
		require.NoError(t, b.client.Events.Delete(ctx, "e00010"))
		res := verify(t, export(t))
		require.Equal(t, exitOK, res.code, res.stdout+res.stderr)
		require.Contains(t, res.stdout, "70 records read, 70 of them leaves")
		require.Regexp(t, `deleted by audex: 5 leaves, by evt_\w+ \(audit.purge_completed\)`, res.stdout)
		require.Regexp(t, `deleted by audex: 1 leaves, by evt_\w+ \(audit.event_deleted\)`, res.stdout)
	})

	t.Run("ARowDeletedBehindAudexsBackIsMissing", func(t *testing.T) {
		for _, table := range []string{"events", "event_ids"} {
			_, err := b.srv.Pool.Exec(ctx, `DELETE FROM `+table+` WHERE tenant_id = $1 AND id = 'e00020'`, b.srv.Tenant)
			require.NoError(t, err)
		}
		res := verify(t, export(t))
		require.Equal(t, exitFailure, res.code, res.stdout)
		require.Regexp(t, `PROBLEM: leaf \d+ \(event "e00020"\) is MISSING: its event was deleted without a deletion record`, res.stdout)
	})

	t.Run("AChangedAForgedAndAReorderedRowAreNotInTheLog", func(t *testing.T) {
		_, err := b.srv.Pool.Exec(ctx, `UPDATE events SET action = 'doc.edited' WHERE tenant_id = $1 AND id = 'e00030'`, b.srv.Tenant)
		require.NoError(t, err)
		storetest.ForgeEvent(t, b.srv.Pool, b.srv.Tenant, "e00031", "e00031-forged")
		// Two events swap their places in arrival order.
		_, err = b.srv.Pool.Exec(ctx, `UPDATE events e SET received_at = o.received_at FROM events o
			WHERE e.tenant_id = $1 AND o.tenant_id = $1 AND (e.id, o.id) IN (('e00040', 'e00061'), ('e00061', 'e00040'))`, b.srv.Tenant)
		require.NoError(t, err)
		res := verify(t, export(t))
		require.Equal(t, exitFailure, res.code, res.stdout)
		for _, id := range []string{"e00030", "e00031-forged", "e00040", "e00061"} {
			require.Regexp(t, `PROBLEM: \S+part-\d+\.jsonl line \d+: event "`+id+`" is NOT IN THE LOG`, res.stdout)
		}
	})

	t.Run("CSVAndParquetExportsAreCheckedRecordByRecord", func(t *testing.T) {
		for _, f := range []struct{ args, part string }{
			{"--format parquet", `part-\d+\.parquet row`},
			{"--format csv --compression gzip", `part-\d+\.csv\.gz record`},
		} {
			args := append([]string{"export", "create", "--since", "2026-04-01", "--until", "2026-04-02", "--part_max_records", "20", "--wait"}, strings.Fields(f.args)...)
			res := b.run(t, args...)
			require.Equal(t, exitOK, res.code, res.stderr)
			e, err := b.client.Exports.Get(ctx, lines(res.stdout)[0])
			require.NoError(t, err)
			res = verify(t, *e.ManifestKey)
			require.Equal(t, exitFailure, res.code, res.stdout)
			for _, id := range []string{"e00030", "e00031-forged", "e00040", "e00061"} {
				require.Regexp(t, `PROBLEM: \S+`+f.part+` \d+: event "`+id+`" is NOT IN THE LOG`, res.stdout)
			}
			m := regexp.MustCompile(`(\d+) records read, (\d+) of them leaves`).FindStringSubmatch(res.stdout)
			require.NotNil(t, m, res.stdout)
			read, leaves := atoi(t, m[1]), atoi(t, m[2])
			require.Equal(t, read-4, leaves, "every other %s is its event's leaf", f.part)
		}
	})

	t.Run("ObjectsChangedAtTheDestinationAreNamed", func(t *testing.T) {
		a, other := manifestOf(t, first), manifestOf(t, export(t))
		// rewrite changes the lines of a part of the first export.
		rewrite := func(key string, change func(rows []string) []string) {
			data, err := os.ReadFile(file(key))
			require.NoError(t, err)
			rows := strings.SplitAfter(string(data), "\n")
			require.NoError(t, os.WriteFile(file(key), []byte(strings.Join(change(rows), "")), 0o600))
		}
		// Two lines of a part swapped; a line of another removed.
		rewrite(a.Files[0].Key, func(rows []string) []string {
			rows[0], rows[1] = rows[1], rows[0]
			return rows
		})
		rewrite(a.Files[1].Key, func(rows []string) []string { return rows[1:] })
		// Another export's part in place of one of this export's.
		swapped, err := os.ReadFile(file(other.Files[2].Key))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(file(a.Files[2].Key), swapped, 0o600))
		res := verify(t, first)
		require.Equal(t, exitFailure, res.code, res.stdout)
		for _, f := range a.Files[:3] {
			require.Regexp(t, "PROBLEM: "+f.Key+": CHANGED: .*sha256 [0-9a-f]{64}, manifest says "+f.SHA256, res.stdout)
		}
		require.Contains(t, res.stdout, "records were REMOVED from the export", "the line removed is no record")
	})

	t.Run("AnEditedManifestAndAReplayedCheckpointAreRefused", func(t *testing.T) {
		key := export(t)
		path := file(key)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))

		m["record_count"] = 1000
		edited, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, edited, 0o600))
		res := verify(t, key)
		require.Equal(t, exitFailure, res.code, res.stdout)
		require.Contains(t, res.stdout, "PROBLEM: "+key+": the manifest was EDITED")

		// An older checkpoint put in, and the manifest signed again with
		// the stolen key: the leaves no longer make its root.
		var older audex.Export
		olderData, err := os.ReadFile(file(first))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(olderData, &older))
		require.NoError(t, json.Unmarshal(data, &m))
		m["log"].(map[string]any)["checkpoint"] = older.Log.Checkpoint
		replayed, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, replayed, 0o600))
		sig, err := keys.SignManifest(integrity.Origin("audex", b.srv.Tenant), replayed)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path+".sig", sig, 0o600))
		res = verify(t, key)
		require.Equal(t, exitFailure, res.code, res.stdout)
		require.Contains(t, res.stdout, key+": signed (")
		require.Regexp(t, `do not make the checkpoint.s root|are not within the checkpoint`, res.stdout)
	})

	t.Run("AStreamBatchVerifies", func(t *testing.T) {
		s, err := b.client.Streams.Create(ctx, client.StreamRequest{Format: "jsonl", Compression: "gzip", Destination: "local",
			Interval: time.Second, Start: time.Now().Add(-time.Hour)})
		require.NoError(t, err)
		var batch client.StreamBatch
		require.Eventually(t, func() bool {
			for bt, err := range b.client.Streams.Batches(ctx, s.ID) {
				require.NoError(t, err)
				batch = bt
				return true
			}
			return false
		}, 30*time.Second, 200*time.Millisecond)
		require.NotNil(t, batch.ManifestKey)
		res := verify(t, *batch.ManifestKey)
		// The rows forged, changed and deleted above are in the stream's
		// backfill too.
		require.Equal(t, exitFailure, res.code, res.stdout)
		require.Contains(t, res.stdout, *batch.ManifestKey+": signed (")
		require.Contains(t, res.stdout, `event "e00030" is NOT IN THE LOG`)
		require.Contains(t, res.stdout, `(event "e00020") is MISSING`)
		require.Regexp(t, `deleted by audex: 5 leaves, by evt_\w+ \(audit.purge_completed\)`, res.stdout)
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
