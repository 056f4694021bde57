package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/audex-dev/audex/internal/store"
)

// Error codes of docs/api.md, each with its one HTTP status.
const (
	CodeInvalidArgument  = "invalid_argument"
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodePayloadTooLarge  = "payload_too_large"
	CodeRateLimited      = "rate_limited"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

var codeStatus = map[string]int{
	CodeInvalidArgument:  http.StatusBadRequest,
	CodeUnauthenticated:  http.StatusUnauthorized,
	CodePermissionDenied: http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeConflict:         http.StatusConflict,
	CodePayloadTooLarge:  http.StatusRequestEntityTooLarge,
	CodeRateLimited:      http.StatusTooManyRequests,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}

// Error is the one error type that handlers return to clients: the body
// {"error": {"code", "message", "field"}} with the code's status.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header (whole
	// seconds, at least 1): for rate_limited and unavailable.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Status is the HTTP status of the error's code.
func (e *Error) Status() int { return codeStatus[e.Code] }

// invalid returns an invalid_argument error about field.
func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...), Field: field}
}

func notFound(what string) *Error {
	return &Error{Code: CodeNotFound, Message: what + " not found"}
}

// budgetRetryAfter is the Retry-After of a request refused because a
// statement ran past its budget: the same request may pass when the
// database is less busy, a narrower one sooner.
const budgetRetryAfter = 5 * time.Second

// toAPIError maps any error to the client's view of it. Only errors that
// become "internal" carry detail that must stay in the server log.
func toAPIError(err error) (apiErr *Error, internal bool) {
	switch {
	case errors.As(err, &apiErr):
		return apiErr, false
	case errors.Is(err, store.ErrNotFound):
		return notFound("resource"), false
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeConflict, Message: "the change conflicts with the current state"}, false
	case errors.Is(err, store.ErrBudget):
		return &Error{Code: CodeUnavailable, RetryAfter: budgetRetryAfter,
			Message: "the request needed more than its time budget; narrow the time range or add filters, or retry later"}, false
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: CodeUnavailable, Message: "the database is unavailable; retry later"}, false
	case errors.Is(err, store.ErrInvalid):
		return &Error{Code: CodeInvalidArgument, Message: "a value was refused by the database as malformed"}, false
	}
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return &Error{Code: CodePayloadTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", maxBytes.Limit)}, false
	}
	return &Error{Code: CodeInternal, Message: "internal error"}, true
}

// writeError sends err to the client in the API's error shape and logs the
// detail of internal errors.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	apiErr, internal := toAPIError(err)
	if internal {
		if r.Context().Err() != nil {
			return // the client is gone; nobody reads the answer
		}
		s.logger.ErrorContext(r.Context(), "request_failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if apiErr.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfter(apiErr.RetryAfter))
	}
	s.writeJSON(w, apiErr.Status(), map[string]*Error{"error": apiErr})
}

// writeJSON sends v as the JSON body with status. A v that cannot be
// encoded is a bug, never a silent 200: it is logged and the client gets
// 500 internal instead.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	if err := encodeJSON(w, status, v); err != nil {
		s.logger.Error("response_encode_failed", slog.Int("status", status), slog.String("type", fmt.Sprintf("%T", v)), slog.Any("error", err))
	}
}

// internalErrorBody is the body of a 500 internal error.
var internalErrorBody = []byte(`{"error":{"code":"internal","message":"internal error"}}` + "\n")

// encodeJSON encodes v before writing anything, then sends it with status;
// when v cannot be encoded it sends 500 internal in the error shape and
// returns the encoding error.
func encodeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, internalErrorBody
	} else {
		body = append(body, '\n')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	return nil
}
