package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode/utf8"
)

// hashingReader passes through what it reads from r while counting the
// bytes and hashing them with SHA-256, so that Put learns the size and
// checksum of what it stored without holding the object. It stops with
// ctx's error once ctx ends, so that an upload whose SDK does not watch
// ctx between requests still stops, and it remembers the source's own read
// error, which some SDKs reword on the way out.
//
// It deliberately has no other method (no Seek, no ReadAt, no WriteTo):
// SDKs must stream it, never seek back over it.
type hashingReader struct {
	ctx     context.Context
	r       io.Reader
	h       hash.Hash
	n       int64
	readErr error
}

func newHashingReader(ctx context.Context, r io.Reader) *hashingReader {
	return &hashingReader{ctx: ctx, r: r, h: sha256.New()}
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	if err := hr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.h.Write(p[:n])
		hr.n += int64(n)
	}
	if err != nil && !errors.Is(err, io.EOF) && hr.readErr == nil {
		hr.readErr = err
	}
	return n, err
}

// object describes what went through the reader, stored at key.
func (hr *hashingReader) object(key string) Object {
	return Object{Key: key, Size: hr.n, SHA256: hex.EncodeToString(hr.h.Sum(nil))}
}

// cause returns the error a failed upload should report: the source's read
// error when there was one (an SDK may have reworded it), else err.
func (hr *hashingReader) cause(err error) error {
	if hr.readErr != nil {
		return fmt.Errorf("read source: %w", hr.readErr)
	}
	return err
}

// errInvalidKey is wrapped by the errors of keys that validateKey refuses.
var errInvalidKey = errors.New("invalid key")

// validateKey accepts the keys every backend can store alike: non-empty
// UTF-8 without NUL, made of non-empty "/"-separated segments none of which
// is "." or "..", and not starting with "/". One rule for all backends means
// that an export that works on a folder works on a bucket and back.
func validateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", errInvalidKey)
	case !utf8.ValidString(key) || strings.ContainsRune(key, 0):
		return fmt.Errorf("%w: not UTF-8 text", errInvalidKey)
	case strings.HasPrefix(key, "/"):
		return fmt.Errorf("%w: starts with /", errInvalidKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: empty path segment", errInvalidKey)
		case ".", "..":
			return fmt.Errorf("%w: %q segment", errInvalidKey, seg)
		}
	}
	return nil
}

// contentType is the Content-Type stored with an object, from its key's
// extension. A gzipped part is stored as application/gzip without a
// Content-Encoding, so that no store or client decompresses it on the fly
// (its bytes, and so its SHA-256, stay those that were written).
func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(key, ".jsonl"), strings.HasSuffix(key, ".ndjson"):
		return "application/x-ndjson"
	case strings.HasSuffix(key, ".json"):
		return "application/json"
	case strings.HasSuffix(key, ".csv"):
		return "text/csv; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

// sdkError is an SDK's error in short words: kind is one of the package's
// sentinels (or nil for a transient error) and detail the service's own
// code or status. errors.Is reaches kind, errors.As the SDK's error.
type sdkError struct {
	kind   error
	detail string
	err    error
}

func (e *sdkError) Error() string {
	switch {
	case e.kind == nil:
		return e.detail
	case e.detail == "":
		return e.kind.Error()
	default:
		return e.kind.Error() + " (" + e.detail + ")"
	}
}

func (e *sdkError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// opError wraps err, the failure of op ("put", "open", "list", "delete") on
// key in the named store ("s3 bucket \"x\""), once: it adds ctx's error when
// ctx ended (so errors.Is(err, context.Canceled) holds whatever the SDK
// returned) and removes every secret from the text.
func opError(ctx context.Context, store, op, key string, err error, secrets []string) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	if op == "list" {
		err = fmt.Errorf("list %q in %s: %w", key, store, err)
	} else {
		err = fmt.Errorf("%s %q in %s: %w", op, key, store, err)
	}
	return scrub(err, secrets)
}

// scrubbedError is an error whose text has its secrets replaced.
type scrubbedError struct {
	err     error
	secrets []string
}

// scrub returns err with every secret (of at least 4 bytes) replaced in
// its text, in case an SDK put one there (a SAS token in a URL, say).
func scrub(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return err
	}
	return &scrubbedError{err: err, secrets: keep}
}

func (e *scrubbedError) Error() string {
	s := e.err.Error()
	for _, secret := range e.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

func (e *scrubbedError) Unwrap() error { return e.err }
