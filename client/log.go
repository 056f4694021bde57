package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/audex-dev/audex"
)

// InclusionProof is an event's inclusion proof in the integrity log.
type InclusionProof = audex.InclusionProof

// ConsistencyProof proves that one checkpoint's tree is a prefix of
// another's.
type ConsistencyProof = audex.ConsistencyProof

// LogService is the integrity log's routes; get it as Client.Log. It
// fetches what a verifier checks; it checks nothing itself.
type LogService struct{ c *Client }

// PublicKeys returns the log's verifier keys, oldest first (signed-note
// verifier keys). A verifier should pin them once, not fetch them each
// time from the server it checks.
func (l *LogService) PublicKeys(ctx context.Context) ([]string, error) {
	text, err := l.text(ctx, "/v1/audit/log/public-key", nil)
	return strings.Fields(text), err
}

// Checkpoint returns the tenant's signed checkpoint of tree size size
// (0: the latest), as the signed note's bytes.
func (l *LogService) Checkpoint(ctx context.Context, size int64) ([]byte, error) {
	text, err := l.text(ctx, "/v1/audit/log/checkpoint", sizeQuery(size))
	return []byte(text), err
}

// Proof returns the inclusion proof of event id against the checkpoint
// of tree size size (0: the latest).
func (l *LogService) Proof(ctx context.Context, id string, size int64) (InclusionProof, error) {
	var p InclusionProof
	err := l.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/events/" + url.PathEscape(id) + "/proof",
		query: sizeQuery(size), idempotent: true, want: http.StatusOK}, &p)
	return p, err
}

// Consistency returns the proof that the tenant's checkpoint of from
// leaves is a prefix of its checkpoint of to leaves.
func (l *LogService) Consistency(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	var p ConsistencyProof
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "to": {strconv.FormatInt(to, 10)}}
	err := l.c.do(ctx, request{method: http.MethodGet, path: "/v1/audit/log/consistency", query: q, idempotent: true, want: http.StatusOK}, &p)
	return p, err
}

// text GETs a text/plain route.
func (l *LogService) text(ctx context.Context, path string, q url.Values) (string, error) {
	resp, err := l.c.send(ctx, request{method: http.MethodGet, path: path, query: q, idempotent: true, want: http.StatusOK})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("audex: GET %s: %w", path, err)
	}
	return string(data), nil
}

// sizeQuery is ?size=size, or no query for 0.
func sizeQuery(size int64) url.Values {
	if size == 0 {
		return nil
	}
	return url.Values{"size": {strconv.FormatInt(size, 10)}}
}
