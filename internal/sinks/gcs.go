package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// gcsChunkSize is what a GCS Put holds in memory: the Writer sends the
// object as a resumable upload in chunks of this size.
const gcsChunkSize = 8 << 20

type gcsSink struct {
	client *storage.Client
	bucket *storage.BucketHandle
	store  string
}

func newGCS(ctx context.Context, cfg Config, getenv func(string) string) (*gcsSink, error) {
	s := &gcsSink{store: fmt.Sprintf("gcs bucket %q", cfg.Bucket)}
	var opts []option.ClientOption
	if host := getenv("STORAGE_EMULATOR_HOST"); host != "" {
		// What the SDK does itself when it sees this variable in the
		// process's environment, done here so that getenv decides.
		endpoint := host
		if !strings.Contains(endpoint, "://") {
			endpoint = "http://" + endpoint
		}
		opts = append(opts, option.WithEndpoint(strings.TrimRight(endpoint, "/")+"/storage/v1/"), option.WithoutAuthentication())
	} else {
		if cfg.Endpoint != "" {
			opts = append(opts, option.WithEndpoint(cfg.Endpoint))
		}
		if cfg.CredentialsFileEnv != "" {
			path, err := requireEnv(getenv, s.store, cfg.CredentialsFileEnv)
			if err != nil {
				return nil, err
			}
			opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, path))
		}
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.store, err)
	}
	// A few quick retries of transient failures, for uploads too (every
	// write of audex's is safe to repeat); 404 and 403 are never retried.
	client.SetRetry(
		storage.WithPolicy(storage.RetryAlways),
		storage.WithMaxAttempts(4),
		storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}),
	)
	s.client = client
	s.bucket = client.Bucket(cfg.Bucket)
	return s, nil
}

// Close releases the client's connections.
func (s *gcsSink) Close() error { return s.client.Close() }

func (s *gcsSink) fail(ctx context.Context, op, key string, err error) error {
	return opError(ctx, s.store, op, key, gcsError(op, err), nil)
}

// Put implements Sink. The Writer makes a resumable upload, which becomes
// an object only when it is finalised by Close; on any failure the
// Writer's context is cancelled first, so the upload is abandoned
// unfinalised and no object appears.
func (s *gcsSink) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := validateKey(key); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.bucket.Object(key).NewWriter(wctx)
	w.ChunkSize = gcsChunkSize
	w.ChunkRetryDeadline = 30 * time.Second
	w.ContentType = contentType(key)
	hr := newHashingReader(ctx, r)
	if _, err := io.Copy(w, hr); err != nil {
		cancel()
		_ = w.Close()
		return Object{}, s.fail(ctx, "put", key, hr.cause(err))
	}
	if err := w.Close(); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	return hr.object(key), nil
}

// Open implements Sink.
func (s *gcsSink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rd, err := s.bucket.Object(key).NewReader(ctx)
	if err != nil {
		return nil, s.fail(ctx, "open", key, err)
	}
	return rd, nil
}

// List implements Sink.
func (s *gcsSink) List(ctx context.Context, prefix string) ([]Object, error) {
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size"}); err != nil {
		return nil, s.fail(ctx, "list", prefix, err)
	}
	var objects []Object
	it := s.bucket.Objects(ctx, q)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		objects = append(objects, Object{Key: attrs.Name, Size: attrs.Size})
	}
	sort.Slice(objects, func(i, j int) bool { return objects[i].Key < objects[j].Key })
	return objects, nil
}

// Delete implements Sink.
func (s *gcsSink) Delete(ctx context.Context, key string) error {
	err := s.bucket.Object(key).Delete(ctx)
	if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// gcsError maps the GCS SDK's errors to the package's sentinels. A 404 on
// a write or a listing can only mean the bucket is missing; on a read the
// SDK says which.
func gcsError(op string, err error) error {
	switch {
	case errors.Is(err, storage.ErrBucketNotExist):
		return &sdkError{kind: ErrBucketNotFound, err: err}
	case errors.Is(err, storage.ErrObjectNotExist) && op != "put" && op != "list":
		return &sdkError{kind: ErrNotFound, err: err}
	}
	var api *googleapi.Error
	if !errors.As(err, &api) {
		if errors.Is(err, storage.ErrObjectNotExist) {
			return &sdkError{kind: ErrBucketNotFound, err: err}
		}
		return err
	}
	detail := fmt.Sprintf("HTTP %d", api.Code)
	if api.Message != "" {
		detail += ": " + api.Message
	}
	switch api.Code {
	case http.StatusNotFound:
		if op == "put" || op == "list" {
			return &sdkError{kind: ErrBucketNotFound, detail: detail, err: err}
		}
		return &sdkError{kind: ErrNotFound, detail: detail, err: err}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &sdkError{kind: ErrAccessDenied, detail: detail, err: err}
	}
	return err
}
