package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// tempPrefix starts the names of the files a Put writes before renaming
// them into place; List never shows them.
const tempPrefix = ".audex-tmp-"

// fileSink stores objects as files under a folder (the "bucket"): the key
// "a/b/part-00001.csv" is the file a/b/part-00001.csv in it. The folder
// itself must exist (it is not created, so that a typo in the
// configuration fails instead of exporting to an unexpected place); the
// sub-folders of keys are created as needed. Files are readable by their
// owner only (they hold audit data).
type fileSink struct {
	root  string
	store string
}

func newFile(cfg Config) (*fileSink, error) {
	root, err := filepath.Abs(cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("file folder %q: %w", cfg.Bucket, err)
	}
	return &fileSink{root: root, store: fmt.Sprintf("file folder %q", root)}, nil
}

func (s *fileSink) fail(ctx context.Context, op, key string, err error) error {
	return opError(ctx, s.store, op, key, err, nil)
}

// checkRoot returns an error wrapping ErrBucketNotFound when the folder is
// missing or not a folder.
func (s *fileSink) checkRoot() error {
	info, err := os.Stat(s.root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &sdkError{kind: ErrBucketNotFound, detail: "no such folder", err: err}
	case errors.Is(err, fs.ErrPermission):
		return &sdkError{kind: ErrAccessDenied, err: err}
	case err != nil:
		return err
	case !info.IsDir():
		return &sdkError{kind: ErrBucketNotFound, detail: "not a folder", err: fs.ErrInvalid}
	}
	return nil
}

// fileError maps the errors of the file system to the package's sentinels.
func (s *fileSink) fileError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if rootErr := s.checkRoot(); rootErr != nil {
			return rootErr
		}
		return &sdkError{kind: ErrNotFound, err: err}
	case errors.Is(err, fs.ErrPermission):
		return &sdkError{kind: ErrAccessDenied, detail: err.Error(), err: err}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &sdkError{kind: ErrNoSpace, err: err}
	}
	return err
}

// Put implements Sink: it writes a temporary file in the key's folder,
// syncs it, renames it over the key and syncs the folder, so that the key
// holds either the previous file or the whole new one, even after a crash.
// On failure the temporary file is removed.
func (s *fileSink) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := validateKey(key); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	if err := s.checkRoot(); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	dst := filepath.Join(s.root, filepath.FromSlash(key))
	dir := filepath.Dir(dst)
	var tmp *os.File
	// A concurrent Delete may remove an emptied folder between MkdirAll
	// and CreateTemp: try again once.
	for attempt := 0; ; attempt++ {
		err := os.MkdirAll(dir, 0o750)
		if err == nil {
			tmp, err = os.CreateTemp(dir, tempPrefix+"*")
		}
		if err == nil {
			break
		}
		if attempt == 1 || !errors.Is(err, fs.ErrNotExist) {
			return Object{}, s.fail(ctx, "put", key, s.fileError(err))
		}
	}
	obj, err := s.write(ctx, tmp, key, r)
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return Object{}, s.fail(ctx, "put", key, s.fileError(err))
	}
	if err := syncDir(dir); err != nil {
		// The rename may not survive a crash: report the failure, and
		// leave no object that the caller would believe was not written.
		_ = os.Remove(dst)
		return Object{}, s.fail(ctx, "put", key, err)
	}
	return obj, nil
}

// write copies r to tmp, syncs and closes it.
func (s *fileSink) write(ctx context.Context, tmp *os.File, key string, r io.Reader) (Object, error) {
	hr := newHashingReader(ctx, r)
	if _, err := io.Copy(tmp, hr); err != nil {
		_ = tmp.Close()
		return Object{}, hr.cause(err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return Object{}, err
	}
	if err := tmp.Close(); err != nil {
		return Object{}, err
	}
	return hr.object(key), nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// Open implements Sink.
func (s *fileSink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := validateKey(key); err != nil {
		// No file can have this key.
		return nil, s.fail(ctx, "open", key, &sdkError{kind: ErrNotFound, err: err})
	}
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(key)))
	if err != nil {
		return nil, s.fail(ctx, "open", key, s.fileError(err))
	}
	if info, err := f.Stat(); err != nil || !info.Mode().IsRegular() {
		_ = f.Close()
		return nil, s.fail(ctx, "open", key, &sdkError{kind: ErrNotFound, detail: "not a file", err: fs.ErrNotExist})
	}
	return f, nil
}

// List implements Sink. It walks only the deepest folder that the prefix
// names, and skips the temporary files of Puts under way.
func (s *fileSink) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := s.checkRoot(); err != nil {
		return nil, s.fail(ctx, "list", prefix, err)
	}
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		if validateKey(prefix[:i]) != nil {
			return nil, nil // no stored key can start with it
		}
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var objects []Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the folder is gone, or was never there
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while listing
		}
		if err != nil {
			return err
		}
		objects = append(objects, Object{Key: key, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, s.fail(ctx, "list", prefix, s.fileError(err))
	}
	// A walk goes folder by folder ("a/b" before "a-c"); the contract is
	// byte order of the whole key.
	sort.Slice(objects, func(i, j int) bool { return objects[i].Key < objects[j].Key })
	return objects, nil
}

// Delete implements Sink. It also removes the folders that the deletion
// left empty, up to (not including) the root.
func (s *fileSink) Delete(ctx context.Context, key string) error {
	if validateKey(key) != nil {
		return nil // no file can have this key
	}
	name := filepath.Join(s.root, filepath.FromSlash(key))
	if info, err := os.Lstat(name); err == nil && info.IsDir() {
		return nil // a folder of other keys, not an object
	}
	err := os.Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		if rootErr := s.checkRoot(); rootErr != nil {
			return s.fail(ctx, "delete", key, rootErr)
		}
		return nil
	}
	if err != nil {
		return s.fail(ctx, "delete", key, s.fileError(err))
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		// Fails, harmlessly, on the first folder that is not empty.
		if os.Remove(filepath.Join(s.root, filepath.FromSlash(dir))) != nil {
			break
		}
	}
	return nil
}
