// Package sinks writes export parts and manifests to object stores: S3 (and
// S3-compatible servers), Google Cloud Storage, Azure Blob Storage and a
// local folder, behind one small interface. It knows no SQL, no HTTP
// routes and no River; it must not import internal/store, internal/api or
// internal/jobs.
package sinks

import (
	"context"
	"errors"
	"io"
)

// Errors that sinks return, wrapped; test with errors.Is. Each backend maps
// its SDK's errors to these in one function.
var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrBucketNotFound means the bucket, container or folder does not
	// exist. Permanent: retrying will not help until an operator acts.
	ErrBucketNotFound = errors.New("bucket not found")
	// ErrAccessDenied means the credentials were refused or lack a
	// permission. Permanent.
	ErrAccessDenied = errors.New("access denied")
	// ErrNoSpace means the destination has no space left (a full disk or
	// quota). Permanent: retrying fills the same disk until an operator
	// makes room.
	ErrNoSpace = errors.New("no space left")
)

// IsPermanent reports whether err is a failure that retrying cannot fix
// (a missing bucket, refused credentials, no space left); other errors are
// transient.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrBucketNotFound) || errors.Is(err, ErrAccessDenied) || errors.Is(err, ErrNoSpace)
}

// Object describes a stored object.
type Object struct {
	// Key is the object's key relative to the bucket (for a folder: the
	// path relative to it, with forward slashes).
	Key string
	// Size is the object's length in bytes.
	Size int64
	// SHA256 is the lowercase hex SHA-256 of the object's bytes. Put
	// always sets it; List may leave it empty.
	SHA256 string
}

// Sink is one bucket (or folder) of an object store.
//
// Keys are "/"-separated paths relative to the bucket: UTF-8, not empty,
// without a leading "/", an empty segment, or a "." or ".." segment (one
// rule for every backend, so that what works on a folder works on a
// bucket). Put refuses other keys.
//
// Implementations MUST be safe for concurrent use. Errors MUST NOT contain
// credentials or connection strings, and SHOULD name the bucket. A Sink
// that holds connections may also implement io.Closer.
type Sink interface {
	// Put stores the bytes read from r under key, streaming: it MUST NOT
	// hold the whole object in memory. It computes the size and SHA-256 of
	// what it stored while streaming. An existing object at key MUST be
	// replaced whole. When Put fails (including a read error from r or ctx
	// ending) no object, whole or partial, MUST be left at key by this call
	// (a previous object at key may remain). When ctx ends, Put stops and
	// its error wraps ctx.Err(). Errors wrap ErrBucketNotFound or
	// ErrAccessDenied where they apply, and the source's error when
	// reading r failed.
	Put(ctx context.Context, key string, r io.Reader) (Object, error)

	// Open returns a reader of the object at key. It returns an error
	// wrapping ErrNotFound when there is none. The caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, error)

	// List returns the objects whose keys start with prefix, in byte order
	// of key. An empty result is not an error.
	List(ctx context.Context, prefix string) ([]Object, error)

	// Delete removes the object at key. Deleting an object that does not
	// exist MUST succeed (idempotent).
	Delete(ctx context.Context, key string) error
}
