package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/audex-dev/audex/internal/store"
)

// ReplicaLagHeader is the response header that says a read replica served
// the response's events, and how far behind the primary it was (seconds):
// events ingested within that time may be missing from it.
const ReplicaLagHeader = "Audex-Replica-Lag"

// read runs fn on where a read of events goes: a read replica that may
// serve it (said in w's ReplicaLagHeader), else the primary, which also
// serves it when the replica fails it (store.Reads.Read).
func (s *Server) read(w http.ResponseWriter, fn func(store.DBTX) error) error {
	if s.reads == nil {
		return fn(s.pool)
	}
	return s.reads.Read(func(db store.DBTX, src store.Source) error {
		markReplica(w, src)
		return fn(db)
	})
}

// downloadReader returns where a download reads its pages once its
// barrier holds: a read replica that has replayed every event before it,
// else the primary's download pool. Such a download is exact, so it says
// nothing of a lag.
func (s *Server) downloadReader() func(context.Context) (store.DBTX, error) {
	if s.downloadReads == nil {
		return nil
	}
	return func(ctx context.Context) (store.DBTX, error) {
		db, _, err := s.downloadReads.ReaderAfter(ctx)
		return db, err
	}
}

// markReplica says in w's header whether src, a replica, serves the
// response, and how far behind it is.
func markReplica(w http.ResponseWriter, src store.Source) {
	if src.Replica == "" {
		w.Header().Del(ReplicaLagHeader)
		return
	}
	w.Header().Set(ReplicaLagHeader, strconv.FormatFloat(src.Lag.Seconds(), 'f', 3, 64))
}
