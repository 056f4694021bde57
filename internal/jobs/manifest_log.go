package jobs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/integrity"
	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/store"
)

// leavesObject is the name of the object of a manifest's leaf hashes,
// beside its parts.
const leavesObject = "log-leaves.bin"

// manifestLog seals the tenant's log up to through when it was not (so
// that its latest checkpoint covers the records) and returns what the
// manifest of the records says of it, with its leaves object written at
// leavesKey. The records are the tenant's events that f matches received
// from from on and before through. Nil when s is nil or no record is a
// leaf.
//
// With leafIDs, f must select by time alone: the records' leaves are
// then guessed from the log alone (store.LeavesOfTimes), and leafIDs gets
// their event ids, which the caller compares with the records' before it
// uses the manifest. Without, they are found by reading the records
// (store.LeavesOf).
//
// When a purge deleted leaves among the records' and has not recorded it
// yet, it waits for the purge to end, seals its record and works the log
// out again, so that the manifest verifies. streamID names the stream
// whose batch this is ("" for an export): a purge that waits for that
// stream is not waited for.
func (s *LogSealer) manifestLog(ctx context.Context, log *slog.Logger, db store.DBTX, sink sinks.Sink, tenantID, streamID, leavesKey string, f audex.Filter, from, through time.Time, leafIDs *store.IDMultiset) (*audex.ManifestLog, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.SealTenantBefore(ctx, db, tenantID, through); err != nil {
		return nil, err
	}
	for resealed := false; ; resealed = true {
		m, unrecorded, err := s.writeManifestLog(ctx, db, sink, tenantID, leavesKey, f, from, through, leafIDs)
		if err != nil || len(unrecorded) == 0 {
			return m, err
		}
		waited, err := waitForPurges(ctx, log, db, tenantID, unrecorded, streamID)
		if err != nil {
			return nil, err
		}
		if !waited && resealed {
			// Nothing will record them now: a purge that failed before
			// audex recorded failed purges, or one waiting for this stream.
			log.Warn("manifest_deletions_unrecorded", slog.Any("deleted_by", unrecorded))
			return m, nil
		}
		if err := s.SealTenant(ctx, db, tenantID); err != nil {
			return nil, err
		}
	}
}

// writeManifestLog writes the leaves object of the records at leavesKey
// and returns what the manifest says of the log in the latest checkpoint,
// and the deletions of its leaves not recorded in that checkpoint
// (store.WriteManifestLog). leafIDs, when not nil, is emptied and gets
// the event ids of the records' leaves (see manifestLog).
func (s *LogSealer) writeManifestLog(ctx context.Context, db store.DBTX, sink sinks.Sink, tenantID, leavesKey string, f audex.Filter, from, through time.Time, leafIDs *store.IDMultiset) (*audex.ManifestLog, []string, error) {
	size, checkpoint, err := store.LatestLogCheckpoint(ctx, db, tenantID)
	if err != nil {
		return nil, nil, err
	}
	var records store.LeafSet
	if leafIDs != nil {
		leafIDs.Reset()
		records, err = store.LeavesOfTimes(ctx, db, tenantID, f, from, through, size)
	} else {
		records, err = store.LeavesOf(ctx, db, tenantID, f, from, through, size)
	}
	if err != nil || records.Empty() {
		return nil, nil, err
	}
	var m audex.ManifestLog
	var unrecorded []string
	obj, err := uploadPart(ctx, sink, leavesKey, func(w io.Writer) error {
		// 32 bytes a leaf: buffered, one write to the sink per 256 KiB
		// (unbuffered, a 1,000,000-event export made 1,000,000 writes).
		buffered := bufio.NewWriterSize(w, partBufferSize)
		var err error
		if m, unrecorded, err = store.WriteManifestLog(ctx, db, tenantID, records, size, buffered, leafIDs); err != nil {
			return err
		}
		return buffered.Flush()
	})
	if err != nil {
		return nil, nil, err
	}
	m.Checkpoint = checkpoint
	m.Leaves = audex.ExportFile{Key: leavesKey, SizeBytes: obj.Size, Records: m.EndLeaf - m.FirstLeaf, SHA256: obj.SHA256}
	return &m, unrecorded, nil
}

// deletionPoll is how often a manifest waiting for purges to record their
// deletions looks again.
const deletionPoll = time.Second

// waitForPurges waits while one of the tenant's purges named by deleters
// is still deleting (store.PurgesDeleting) and reports whether it waited.
func waitForPurges(ctx context.Context, log *slog.Logger, db store.DBTX, tenantID string, deleters []string, streamID string) (bool, error) {
	for waited := false; ; waited = true {
		deleting, err := store.PurgesDeleting(ctx, db, tenantID, deleters, streamID)
		if err != nil || !deleting {
			return waited, err
		}
		if !waited {
			log.Info("manifest_waits_for_purge", slog.Any("deleted_by", deleters))
		}
		select {
		case <-ctx.Done():
			return waited, ctx.Err()
		case <-time.After(deletionPoll):
		}
	}
}

// putManifest writes manifest at key, after its signature (when s is not
// nil) at key + ".sig".
func (s *LogSealer) putManifest(ctx context.Context, sink sinks.Sink, tenantID, key string, manifest []byte) (sinks.Object, error) {
	if s != nil {
		sig, err := s.Keys.SignManifest(integrity.Origin(s.Name, tenantID), manifest)
		if err != nil {
			return sinks.Object{}, err
		}
		if _, err := sink.Put(ctx, key+".sig", bytes.NewReader(sig)); err != nil {
			return sinks.Object{}, fmt.Errorf("upload %s.sig: %w", key, err)
		}
	}
	obj, err := sink.Put(ctx, key, bytes.NewReader(manifest))
	if err != nil {
		return obj, fmt.Errorf("upload %s: %w", key, err)
	}
	return obj, nil
}
