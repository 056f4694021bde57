// Package client is the Go client of the audex API (docs/api.md in the
// repository): typed calls for ingest, list, get and delete of events,
// summaries, streaming downloads, export jobs that can be waited for,
// purges and the retention policy; iterators that follow cursors; and a
// buffered emitter for ingest. Requests answered 429 or 503 are sent again
// with backoff, honouring Retry-After.
//
//	c, err := client.New("http://127.0.0.1:8080", os.Getenv("AUDEX_API_KEY"))
//	for ev, err := range c.Events.List(ctx, client.ListParams{}) { ... }
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls one audex server with one API key. It is safe for
// concurrent use.
type Client struct {
	base    *url.URL
	key     string
	http    *http.Client
	retries int
	backoff time.Duration // the first pause; it doubles, up to maxBackoff

	// Events lists, gets, deletes, ingests and downloads events.
	Events *EventsService
	// Exports creates, lists, waits for and cancels export jobs.
	Exports *ExportsService
	// Purges requests and follows purges, and reads and sets retention.
	Purges *PurgesService
	// Streams creates, follows, pauses, resumes and deletes export
	// streams, and lists their batches.
	Streams *StreamsService
	// Log fetches the integrity log's keys, checkpoints and proofs.
	Log *LogService
}

// Option changes a Client made by New.
type Option func(*Client)

// WithHTTPClient sends the requests through h (default: a client with a
// 2-minute timeout; downloads are not bound by it).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetries sets how many times a request answered 429 or 503 (or not
// answered at all, for requests that are safe to repeat) is sent again,
// and the first pause between tries, which doubles each time up to 30 s.
// A Retry-After answer sets the pause instead. Default: 5 tries after the
// first, from 200 ms.
func WithRetries(retries int, firstPause time.Duration) Option {
	return func(c *Client) { c.retries, c.backoff = max(0, retries), firstPause }
}

// maxBackoff bounds the pause between two tries, Retry-After included.
const maxBackoff = 30 * time.Second

// New returns a client of the server at baseURL (scheme, host and port;
// a path is kept as a prefix) that authenticates with apiKey.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audex client: %q is not an http(s) URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, key: apiKey, http: &http.Client{Timeout: 2 * time.Minute}, retries: 5, backoff: 200 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	c.Events = &EventsService{c: c}
	c.Exports = &ExportsService{c: c}
	c.Purges = &PurgesService{c: c}
	c.Streams = &StreamsService{c: c}
	c.Log = &LogService{c: c}
	return c, nil
}

// Error is an answer of the API that is not a success, in the API's error
// shape. Test for it with errors.As.
type Error struct {
	// Status is the HTTP status.
	Status int `json:"-"`
	// Code is the API's error code, e.g. "invalid_argument", "not_found".
	Code string `json:"code"`
	// Message says what was wrong, for people.
	Message string `json:"message"`
	// Field names the parameter or body field at fault, if any.
	Field string `json:"field,omitempty"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("audex: %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// request is one call: what to send and what to do with the answer.
type request struct {
	method string
	path   string     // below the base URL, e.g. /v1/audit/events
	query  url.Values // nil: none
	body   any        // marshalled as JSON; nil: no body
	// idempotent requests are also sent again when no answer came back.
	idempotent bool
	want       int // the success status
}

// do sends r, with retries, and decodes a successful answer's JSON into
// out (when out is not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("audex: %s %s: decode the answer: %w", r.method, r.path, err)
	}
	return nil
}

// send sends r until it is answered r.want or a final error, and returns
// the successful response, whose body the caller closes.
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("audex: %s %s: %w", r.method, r.path, err)
		}
	}
	u := *c.base
	u.Path += r.path
	u.RawQuery = r.query.Encode()
	pause := c.backoff
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.method, u.String(), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		var apiErr *Error
		switch {
		case err != nil && (ctx.Err() != nil || !r.idempotent || attempt >= c.retries):
			return nil, fmt.Errorf("audex: %s %s: %w", r.method, r.path, err)
		case err != nil:
			// Not answered: safe to send again.
		case resp.StatusCode == r.want:
			return resp, nil
		default:
			apiErr = readError(resp)
			retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
			if !retryable || attempt >= c.retries {
				return nil, apiErr
			}
		}
		wait := pause
		if apiErr != nil && apiErr.RetryAfter > 0 {
			wait = apiErr.RetryAfter
		}
		select {
		case <-ctx.Done():
			if apiErr != nil {
				return nil, apiErr
			}
			return nil, ctx.Err()
		case <-time.After(min(wait, maxBackoff)):
		}
		pause = min(2*pause, maxBackoff)
	}
}

// readError reads and closes an unsuccessful answer.
func readError(resp *http.Response) *Error {
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var shape struct {
		Error *Error `json:"error"`
	}
	e := &Error{}
	if json.Unmarshal(data, &shape) == nil && shape.Error != nil {
		e = shape.Error
	} else {
		e.Code, e.Message = "unexpected_answer", strings.TrimSpace(string(data))
	}
	e.Status = resp.StatusCode
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// timeParam formats t for a query or body: RFC 3339 in UTC.
func timeParam(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// cursorPage is the paging part of a list route's answer.
type cursorPage struct {
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// next is the cursor of the following page; nil on the last page.
func (p *cursorPage) next() *string {
	if !p.HasMore {
		return nil
	}
	return p.NextCursor
}

// listAnswer is a list route's answer: its items and the next cursor.
type listAnswer[T any] interface {
	items() []T
	next() *string
}

// follow yields the items of the list route path with query q (not
// modified), page after page, following cursors until the last page, or
// stops at the first error, which it yields with a zero item.
func follow[T any, A listAnswer[T]](ctx context.Context, c *Client, path string, q url.Values, newAnswer func() A) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		q := maps.Clone(q)
		if q == nil {
			q = url.Values{}
		}
		for {
			page := newAnswer()
			if err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, idempotent: true, want: http.StatusOK}, page); err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range page.items() {
				if !yield(item, nil) {
					return
				}
			}
			cursor := page.next()
			if cursor == nil {
				return
			}
			q.Set("cursor", *cursor)
		}
	}
}
