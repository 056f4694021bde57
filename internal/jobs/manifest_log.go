package jobs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
// that its latest checkpoint covers the records) and returns what the manifest of the records says
// of it, with its leaves object written at leavesKey. The records are
// the tenant's events that f matches received from from on and before
// through. Nil when s is nil or no record is a leaf.
func (s *LogSealer) manifestLog(ctx context.Context, db store.DBTX, sink sinks.Sink, tenantID, leavesKey string, f audex.Filter, from, through time.Time) (*audex.ManifestLog, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.SealTenantBefore(ctx, db, tenantID, through); err != nil {
		return nil, err
	}
	size, checkpoint, err := store.LatestLogCheckpoint(ctx, db, tenantID)
	if err != nil {
		return nil, err
	}
	records, err := store.LeavesOf(ctx, db, tenantID, f, from, through, size)
	if err != nil || records.Empty() {
		return nil, err
	}
	var m audex.ManifestLog
	obj, err := uploadPart(ctx, sink, leavesKey, func(w io.Writer) error {
		// 32 bytes a leaf: buffered, one write to the sink per 256 KiB
		// (unbuffered, a 1,000,000-event export made 1,000,000 writes).
		buffered := bufio.NewWriterSize(w, partBufferSize)
		var err error
		if m, err = store.WriteManifestLog(ctx, db, tenantID, records, size, buffered); err != nil {
			return err
		}
		return buffered.Flush()
	})
	if err != nil {
		return nil, err
	}
	m.Checkpoint = checkpoint
	m.Leaves = audex.ExportFile{Key: leavesKey, SizeBytes: obj.Size, Records: m.EndLeaf - m.FirstLeaf, SHA256: obj.SHA256}
	return &m, nil
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
