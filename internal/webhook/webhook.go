// Package webhook delivers stream batches to an HTTP endpoint: one POST of
// gzipped NDJSON per batch, signed with HMAC-SHA256, to a host the
// operator allowed. It knows no SQL and no River; the URL and the secret
// come from environment variables that the destination names.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/audex-dev/audex/internal/config"
)

// ErrRejected is wrapped by the errors of a delivery that the endpoint
// refused for good (a 4xx other than 408 and 429, or a redirect): retrying
// cannot fix it.
var ErrRejected = errors.New("webhook rejected the delivery")

// Batch is one stream batch to deliver.
type Batch struct {
	StreamID string
	Seq      int64
	// ID is the same on every retry of the batch, so that the endpoint can
	// drop a second copy.
	ID string
	// Body is the batch as gzipped NDJSON, sent as it is.
	Body []byte
}

// Client POSTs batches to one webhook. It is safe for concurrent use.
type Client struct {
	url     *url.URL
	secret  []byte
	allowed []string
	http    *http.Client
	// tries and pause bound the retries of one Deliver: tries attempts,
	// pause doubling between them.
	tries int
	pause time.Duration
}

// Timeout bounds each request.
const Timeout = 30 * time.Second

// FromDestination returns the client of a webhook destination, reading
// its URL and secret from the variables it names through getenv. Errors
// name the variables, never their values.
func FromDestination(d config.Destination, getenv func(string) string) (*Client, error) {
	raw, secret := getenv(d.URLEnv), getenv(d.SecretEnv)
	switch {
	case raw == "":
		return nil, fmt.Errorf("webhook %s: %s is not set", d.Name, d.URLEnv)
	case secret == "":
		return nil, fmt.Errorf("webhook %s: %s is not set", d.Name, d.SecretEnv)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("webhook %s: %s must hold an http or https URL without user info", d.Name, d.URLEnv)
	}
	c := &Client{url: u, secret: []byte(secret), allowed: d.AllowedHosts, tries: 3, pause: 500 * time.Millisecond}
	if !c.allows(u) {
		return nil, fmt.Errorf("webhook %s: host %s is not in allowed_hosts", d.Name, u.Host)
	}
	c.http = &http.Client{
		Timeout: Timeout,
		// A redirect could lead anywhere, an internal address included:
		// it is not followed, and fails the delivery.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// allows reports whether u's host (host, or host:port) is allowed.
func (c *Client) allows(u *url.URL) bool {
	return slices.Contains(c.allowed, u.Host) || slices.Contains(c.allowed, u.Hostname())
}

// Where is the endpoint without its query (which may carry a token), for
// errors and logs.
func (c *Client) Where() string { return c.url.Scheme + "://" + c.url.Host + c.url.Path }

// Sign returns the X-Audex-Signature value of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Deliver POSTs the batch until the endpoint answers 2xx, a few times with
// backoff (honouring Retry-After up to a minute) while it answers 408, 429
// or 5xx or cannot be reached. An error wraps ErrRejected when retrying
// cannot help; otherwise a later Deliver may succeed.
func (c *Client) Deliver(ctx context.Context, b Batch) error {
	pause := c.pause
	var err error
	for try := 1; ; try++ {
		var wait time.Duration
		if wait, err = c.post(ctx, b); err == nil || errors.Is(err, ErrRejected) || try == c.tries {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(max(pause, wait)):
		}
		pause *= 2
	}
}

// maxRetryAfter bounds the wait that a Retry-After header asks for.
const maxRetryAfter = time.Minute

// post sends the batch once; wait is the Retry-After of a 429 or 503.
func (c *Client) post(ctx context.Context, b Batch) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), bytes.NewReader(b.Body))
	if err != nil {
		return 0, fmt.Errorf("webhook %s: %w", c.Where(), err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "audex-webhook/1")
	req.Header.Set("X-Audex-Stream-Id", b.StreamID)
	req.Header.Set("X-Audex-Batch-Seq", strconv.FormatInt(b.Seq, 10))
	req.Header.Set("X-Audex-Batch-Id", b.ID)
	req.Header.Set("X-Audex-Signature", Sign(c.secret, b.Body))
	res, err := c.http.Do(req)
	if err != nil {
		// The error names the URL with its query: say where without it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, fmt.Errorf("webhook %s: %w", c.Where(), err)
	}
	defer res.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, 200))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	switch code := res.StatusCode; {
	case code >= 200 && code < 300:
		return 0, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, maxRetryAfter)
		}
		return wait, fmt.Errorf("webhook %s answered %d", c.Where(), code)
	default:
		return 0, fmt.Errorf("%w: %s answered %d%s", ErrRejected, c.Where(), code, quote(excerpt))
	}
}

// quote is a short, printable excerpt of a response body, or nothing.
func quote(body []byte) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, strings.ToValidUTF8(string(body), ""))
	if s = strings.TrimSpace(s); s == "" {
		return ""
	}
	return ": " + strconv.Quote(s)
}
