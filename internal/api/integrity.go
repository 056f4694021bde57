package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
)

// The integrity log's routes (docs/api.md, "Integrity log"): the public
// keys, a tenant's signed checkpoints and its proofs.

func (s *Server) handleLogPublicKey(w http.ResponseWriter, _ *http.Request, _ audex.APIKey) error {
	if len(s.logVerifierKeys) == 0 {
		return notFound("log key (this server was started without one)")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err := w.Write([]byte(strings.Join(s.logVerifierKeys, "\n") + "\n"))
	return err
}

func (s *Server) handleLogCheckpoint(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseSimpleQuery(r.URL.RawQuery, "size")
	if err != nil {
		return err
	}
	var note string
	if v, ok := q["size"]; ok {
		size, err := parseTreeSize("size", v)
		if err != nil {
			return err
		}
		_, note, err = store.LogCheckpointAt(r.Context(), s.pool, key.TenantID, size)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("checkpoint of size " + v)
		}
		if err != nil {
			return err
		}
	} else if _, note, err = store.LatestLogCheckpoint(r.Context(), s.pool, key.TenantID); errors.Is(err, store.ErrNotFound) {
		return notFound("checkpoint (the log has not been sealed yet)")
	} else if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write([]byte(note))
	return err
}

func (s *Server) handleEventProof(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseSimpleQuery(r.URL.RawQuery, "size")
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !validEventID(id) {
		return notFound("event")
	}
	size, err := s.checkpointSize(r, key.TenantID, q)
	if err != nil {
		return err
	}
	p, err := store.ProveLogInclusion(r.Context(), s.pool, key.TenantID, id, size)
	switch {
	case errors.Is(err, store.ErrNoCheckpoint):
		return notFound("checkpoint of size " + strconv.FormatInt(size, 10))
	case errors.Is(err, store.ErrNotInLog):
		return &Error{Code: CodeConflict, Message: "event " + id + " was received before the log's last seal and yet is not in the log: it was written behind audex's back"}
	case errors.Is(err, store.ErrNotSealed):
		return &Error{Code: CodeConflict, Message: "event " + id + " is not in the checkpoint of size " + strconv.FormatInt(size, 10) + " yet; the next seal adds it"}
	case errors.Is(err, store.ErrNotFound):
		return notFound("event")
	case err != nil:
		return err
	}
	s.writeJSON(w, http.StatusOK, audex.InclusionProof{LeafIndex: p.LeafIndex, TreeSize: p.TreeSize, LeafHash: p.LeafHash, Hashes: nonNil(p.Hashes)})
	return nil
}

func (s *Server) handleLogConsistency(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseSimpleQuery(r.URL.RawQuery, "from", "to")
	if err != nil {
		return err
	}
	var sizes [2]int64
	for i, name := range []string{"from", "to"} {
		v, ok := q[name]
		if !ok {
			return invalid(name, "%s is required: the tree sizes of two checkpoints", name)
		}
		if sizes[i], err = parseTreeSize(name, v); err != nil {
			return err
		}
	}
	from, to := sizes[0], sizes[1]
	if from > to {
		return invalid("from", "from must not be larger than to")
	}
	hashes, err := store.ProveLogConsistency(r.Context(), s.pool, key.TenantID, from, to)
	if errors.Is(err, store.ErrNoCheckpoint) {
		return notFound("checkpoint of size " + strconv.FormatInt(from, 10) + " or " + strconv.FormatInt(to, 10))
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, audex.ConsistencyProof{From: from, To: to, Hashes: nonNil(hashes)})
	return nil
}

// checkpointSize is the tree size that q's size names, or the latest
// checkpoint's.
func (s *Server) checkpointSize(r *http.Request, tenantID string, q map[string]string) (int64, error) {
	if v, ok := q["size"]; ok {
		return parseTreeSize("size", v)
	}
	size, _, err := store.LatestLogCheckpoint(r.Context(), s.pool, tenantID)
	if errors.Is(err, store.ErrNotFound) {
		// The event may exist, unsealed: say so rather than 404.
		if _, err := store.GetEvent(r.Context(), s.pool, tenantID, r.PathValue("id")); errors.Is(err, store.ErrNotFound) {
			return 0, notFound("event")
		} else if err != nil {
			return 0, err
		}
		return 0, &Error{Code: CodeConflict, Message: "the log has no checkpoint yet; the next seal adds the event"}
	}
	return size, err
}

// parseTreeSize reads a tree size: a whole number from 1.
func parseTreeSize(name, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, invalid(name, "%s must be a tree size, a whole number from 1", name)
	}
	return n, nil
}

// nonNil is hashes, or an empty list for nil (a proof of no hash is [],
// not null).
func nonNil(hashes []tlog.Hash) []tlog.Hash {
	if hashes == nil {
		return []tlog.Hash{}
	}
	return hashes
}
