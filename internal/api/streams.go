package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/queue"
	"github.com/audex-dev/audex/internal/store"
)

type streamRequest struct {
	Destination     json.RawMessage `json:"destination"`
	Format          *string         `json:"format"`
	Compression     *string         `json:"compression"`
	Filters         json.RawMessage `json:"filters"`
	IntervalSeconds *jsonInt        `json:"interval_seconds"`
	Start           *string         `json:"start"`
}

type streamPatch struct {
	Status          *string  `json:"status"`
	IntervalSeconds *jsonInt `json:"interval_seconds"`
}

type streamList struct {
	Streams    []audex.Stream `json:"streams"`
	NextCursor *string        `json:"next_cursor"`
	HasMore    bool           `json:"has_more"`
}

type batchList struct {
	Batches    []audex.StreamBatch `json:"batches"`
	NextCursor *string             `json:"next_cursor"`
	HasMore    bool                `json:"has_more"`
}

func (s *Server) handleCreateStream(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var req streamRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	st, err := s.parseStream(req, key.TenantID)
	if err != nil {
		return err
	}
	err = s.createJob(r.Context(), key, "audit.stream_created", "stream", func(tx pgx.Tx) (string, error) {
		return st.ID, store.CreateStream(r.Context(), tx, &st)
	}, func(id string) river.JobArgs { return queue.StreamArgs{StreamID: id} })
	if err != nil {
		return err
	}
	created, err := store.GetStream(r.Context(), s.pool, key.TenantID, st.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/audit/streams/"+st.ID)
	s.writeJSON(w, http.StatusCreated, created)
	return nil
}

// parseStream validates a stream request into a new stream.
func (s *Server) parseStream(req streamRequest, tenantID string) (audex.Stream, error) {
	st := audex.Stream{ID: audex.NewID("str"), TenantID: tenantID, Compression: "none",
		IntervalSeconds: audex.DefaultStreamIntervalSeconds}
	var err error
	if st.Format, st.Compression, err = parseJobFormat(req.Format, req.Compression); err != nil {
		return st, err
	}
	if req.IntervalSeconds != nil {
		if st.IntervalSeconds, err = s.parseStreamInterval(*req.IntervalSeconds); err != nil {
			return st, err
		}
	}
	if req.Start != nil {
		if st.Start, err = parseTime("start", *req.Start); err != nil {
			return st, err
		}
		if st.Start.After(time.Now()) {
			return st, invalid("start", "start must not be in the future: omit it to stream the events received from now on")
		}
	}
	if st.Filter, err = parseBodyFilters(req.Filters); err != nil {
		return st, err
	}
	if st.Filters, err = json.Marshal(st.Filter); err != nil {
		return st, err
	}
	dest, prefix, err := s.resolveDestination(req.Destination, tenantID)
	if err != nil {
		return st, err
	}
	if dest.Type == "webhook" {
		// A webhook receives each batch as one POST of gzipped NDJSON.
		switch {
		case st.Format != "jsonl":
			return st, invalid("format", "a webhook destination takes format jsonl: each batch is POSTed as gzipped NDJSON")
		case req.Compression != nil && *req.Compression != "gzip":
			return st, invalid("compression", "a webhook destination takes compression gzip (or none given): each batch is POSTed gzipped")
		}
		st.Compression = "gzip"
	}
	st.Destination = audex.ExportDestination{Name: dest.Name, Type: dest.Type, Bucket: dest.Bucket, Prefix: joinKey(dest.Prefix, prefix)}
	st.KeyPrefix = joinKey(st.Destination.Prefix, st.ID) + "/"
	return st, nil
}

// parseJobFormat checks the format and compression of an export or a
// stream: jsonl (or ndjson), csv or parquet; none (the default) or gzip,
// and none with parquet, which compresses inside the file.
func parseJobFormat(formatName, compression *string) (string, string, error) {
	var f string
	switch {
	case formatName == nil:
		return "", "", invalid("format", "format is required: jsonl, csv or parquet")
	case *formatName == "jsonl" || *formatName == "ndjson":
		f = "jsonl"
	case *formatName == "csv" || *formatName == "parquet":
		f = *formatName
	default:
		return "", "", invalid("format", "format must be jsonl (or ndjson), csv or parquet")
	}
	c := "none"
	if compression != nil {
		if *compression != "none" && *compression != "gzip" {
			return "", "", invalid("compression", "compression must be none or gzip")
		}
		c = *compression
	}
	if f == "parquet" && c != "none" {
		return "", "", invalid("compression", "compression must be none with parquet, which compresses inside the file")
	}
	return f, c, nil
}

// parseStreamInterval checks a stream's interval_seconds: from the
// server's minimum to a day.
func (s *Server) parseStreamInterval(n jsonInt) (int, error) {
	least := max(1, int(s.streamMinInterval/time.Second))
	if n < jsonInt(least) || n > audex.MaxStreamIntervalSeconds {
		return 0, invalid("interval_seconds", "interval_seconds must be from %d (this server's minimum) to %d (a day)", least, audex.MaxStreamIntervalSeconds)
	}
	return int(n), nil
}

func (s *Server) handleListStreams(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	q, err := parseSimpleQuery(r.URL.RawQuery, "limit", "cursor")
	if err != nil {
		return err
	}
	scope := scopeFingerprint(key.TenantID, "streams")
	limit, after, err := s.pageRequest(q, scope)
	if err != nil {
		return err
	}
	streams, err := store.ListStreams(r.Context(), s.pool, key.TenantID, after, limit+1)
	if err != nil {
		return err
	}
	var resp streamList
	resp.Streams, resp.NextCursor, resp.HasMore = page(s, streams, limit, scope, func(st audex.Stream) audex.Position {
		return audex.Position{OccurredAt: st.CreatedAt, ID: st.ID}
	})
	s.writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) handleGetStream(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	return writeByID(s, w, r, key, "stream", store.GetStream)
}

func (s *Server) handlePatchStream(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	st, err := byID(s, r, key.TenantID, "stream", store.GetStream)
	if err != nil {
		return err
	}
	var req streamPatch
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	var change store.StreamChange
	if req.Status != nil {
		if *req.Status != audex.StreamActive && *req.Status != audex.StreamPaused {
			return invalid("status", "status must be active (resume) or paused")
		}
		change.Status = req.Status
	}
	if req.IntervalSeconds != nil {
		n, err := s.parseStreamInterval(*req.IntervalSeconds)
		if err != nil {
			return err
		}
		change.IntervalSeconds = &n
	}
	if change.Status == nil && change.IntervalSeconds == nil {
		return invalid("", "give status, interval_seconds or both")
	}
	var changed audex.Stream
	err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
		var err error
		if changed, err = store.UpdateStream(r.Context(), tx, key.TenantID, st.ID, change, audex.KeyActor(key)); err != nil {
			return err
		}
		if changed.Status != audex.StreamActive {
			return nil
		}
		// A resumed stream needs its job again; one still there (the
		// stream was active, or paused a moment ago) is kept.
		_, err = s.river.InsertTx(r.Context(), tx, queue.StreamArgs{StreamID: st.ID}, nil)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return notFound("stream")
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, changed)
	return nil
}

func (s *Server) handleDeleteStream(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	st, err := byID(s, r, key.TenantID, "stream", store.GetStream)
	if err != nil {
		return err
	}
	err = store.DeleteStream(r.Context(), s.pool, key.TenantID, st.ID, audex.KeyActor(key))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("stream")
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) handleListStreamBatches(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	st, err := byID(s, r, key.TenantID, "stream", store.GetStream)
	if err != nil {
		return err
	}
	q, err := parseSimpleQuery(r.URL.RawQuery, "limit", "cursor")
	if err != nil {
		return err
	}
	scope := scopeFingerprint(key.TenantID, "stream_batches", st.ID)
	limit, after, err := s.pageRequest(q, scope)
	if err != nil {
		return err
	}
	var afterSeq int64
	if after != nil {
		if afterSeq, err = strconv.ParseInt(after.ID, 10, 64); err != nil {
			return invalid("cursor", "cursor is not valid")
		}
	}
	batches, err := store.ListStreamBatches(r.Context(), s.pool, st.ID, afterSeq, limit+1)
	if err != nil {
		return err
	}
	var resp batchList
	resp.Batches, resp.NextCursor, resp.HasMore = page(s, batches, limit, scope, func(b audex.StreamBatch) audex.Position {
		return audex.Position{ID: strconv.FormatInt(b.Seq, 10)}
	})
	s.writeJSON(w, http.StatusOK, resp)
	return nil
}
