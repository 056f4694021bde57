package api

import (
	"log/slog"
	"net/http"
	"time"
)

// NewHTTPServer returns the http.Server that serves h as audex is
// deployed: its timeouts, a bound on request headers, and net/http's own
// errors logged by logger as warnings. Its WriteTimeout also matters to
// downloads: net/http sets it afresh at each request of a connection, so
// that the tighter write deadlines a download sets (by its minimum rate)
// end with the download.
func NewHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
