package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/format"
	"github.com/audex-dev/audex/internal/store"
)

// downloadMinWindow is the least time a page of a download may take to
// reach the client, whatever its size; past that the client must read at
// the download's minimum rate (Limits.DownloadMinRate) or be cut off.
const downloadMinWindow = 10 * time.Second

type downloadRequest struct {
	Format  *string         `json:"format"`
	Since   *string         `json:"since"`
	Until   *string         `json:"until"`
	Filters json.RawMessage `json:"filters"`
}

// handleDownload streams the tenant's matching events, oldest first, as
// CSV, NDJSON or one JSON array (POST /v1/audit/export).
func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request, key audex.APIKey) error {
	var req downloadRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	f := format.CSV
	if req.Format != nil {
		var ok bool
		if f, ok = format.Parse(*req.Format); !ok {
			return invalid("format", "format must be csv, ndjson (or jsonl) or json")
		}
	}
	filter, err := parseBodyFilters(req.Filters)
	if err != nil {
		return err
	}
	if filter.Since, filter.Until, err = parseBounds(req.Since, req.Until); err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", format.ContentType(f))
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="audex-%s-%s.%s"`,
		filter.Since.Format("20060102T150405Z"), filter.Until.Format("20060102T150405Z"), format.Extension(f)))
	h.Set("Vary", "Accept-Encoding")
	// Each page is encoded into buf and then written out with no database
	// connection held: a slow client holds only its own request.
	var buf bytes.Buffer
	out := &startedWriter{w: w}
	var body io.Writer = &buf
	var gz *gzip.Writer
	if acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		body = gz
	}
	rc := http.NewResponseController(w)
	enc := format.NewEncoder(f, body)
	err = store.StreamEvents(r.Context(), s.downloadPool, s.downloadReader(), key.TenantID, filter, func(page []audex.Event) error {
		for i := range page {
			if err := enc.Write(&page[i]); err != nil {
				return err
			}
		}
		return s.sendDownloadChunk(rc, out, &buf)
	})
	if err == nil {
		err = enc.Close()
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err == nil {
		err = s.sendDownloadChunk(rc, out, &buf)
	}
	if err != nil {
		if !out.started {
			for _, name := range []string{"Content-Disposition", "Content-Encoding", "Vary"} {
				h.Del(name)
			}
			return err
		}
		// The status line is gone: abort the response so that the client
		// sees a broken transfer rather than a short file.
		if r.Context().Err() == nil {
			s.logger.ErrorContext(r.Context(), "download_failed", "tenant_id", key.TenantID, "error", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// sendDownloadChunk writes what buf holds to the client within the time
// that the download's minimum rate allows for it, and empties buf.
func (s *Server) sendDownloadChunk(rc *http.ResponseController, out io.Writer, buf *bytes.Buffer) error {
	if buf.Len() == 0 {
		return nil
	}
	window := max(downloadMinWindow, time.Duration(float64(buf.Len())/float64(s.limits.DownloadMinRate)*float64(time.Second)))
	_ = rc.SetWriteDeadline(time.Now().Add(window))
	_, err := out.Write(buf.Bytes())
	buf.Reset()
	return err
}

// parseBounds parses the required since and until of a download or export.
func parseBounds(sinceRaw, untilRaw *string) (since, until *time.Time, err error) {
	if sinceRaw == nil {
		return nil, nil, invalid("since", "since is required")
	}
	if untilRaw == nil {
		return nil, nil, invalid("until", "until is required")
	}
	s, err := parseTime("since", *sinceRaw)
	if err != nil {
		return nil, nil, err
	}
	u, err := parseTime("until", *untilRaw)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRange(&s, &u, "until"); err != nil {
		return nil, nil, err
	}
	return &s, &u, nil
}

// acceptsGzip reports whether the client accepts a gzip body.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

// startedWriter records whether anything was written, that is whether the
// status line has been sent.
type startedWriter struct {
	w       io.Writer
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.w.Write(p)
}
