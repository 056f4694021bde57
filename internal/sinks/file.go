package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
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
//
// The sink never leaves its folder. Every call opens the folder as an
// os.Root and goes through it, so a symbolic link inside the folder (a
// sub-folder on the way to a key, or the key's file) is followed only when
// it leads to a place inside the folder; one that leads out (or the ".."
// that validateKey already refuses) fails the call with ErrAccessDenied,
// and nothing outside is read, written, created or removed. A link at a
// key itself is never written through: Put replaces the link with the new
// file and Delete removes the link, not what it points to. List does not
// follow links at all (see List). The folder's own path (Config.Bucket)
// may be or contain a link: it is the operator's choice.
type fileSink struct {
	dir   string
	store string
}

func newFile(cfg Config) (*fileSink, error) {
	dir, err := filepath.Abs(cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("file folder %q: %w", cfg.Bucket, err)
	}
	return &fileSink{dir: dir, store: fmt.Sprintf("file folder %q", dir)}, nil
}

func (s *fileSink) fail(ctx context.Context, op, key string, err error) error {
	return opError(ctx, s.store, op, key, err, nil)
}

// openRoot opens the folder for one call; the caller closes it. It is
// opened anew by every call (one open(2), as cheap as the stat it
// replaces), never kept, so that a folder created, replaced or mounted
// after New is the one used. Errors are mapped by fileError.
func (s *fileSink) openRoot() (*os.Root, error) {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		if rootErr := s.checkRoot(); rootErr != nil {
			return nil, rootErr
		}
		return nil, s.fileError(err)
	}
	return root, nil
}

// checkRoot returns an error wrapping ErrBucketNotFound when the folder is
// missing or not a folder.
func (s *fileSink) checkRoot() error {
	info, err := os.Stat(s.dir)
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
// A path that would leave the folder through a symbolic link is
// ErrAccessDenied: the sink refuses it, and retrying will not help until
// an operator removes the link.
func (s *fileSink) fileError(err error) error {
	switch {
	case escapesRoot(err):
		return &sdkError{kind: ErrAccessDenied, detail: "a symbolic link leads out of the folder", err: err}
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

// pathEscapesText is the text of the error that os.Root's methods return
// for a path that leaves the root. The os package does not export that
// error (https://github.com/golang/go/issues/74640), so escapesRoot
// recognises it by its text. Were a Go release to reword it, the path
// would still be refused, only reported as a transient error; the tests
// of the file sink would say so.
const pathEscapesText = "path escapes from parent"

// escapesRoot reports whether err is os.Root's refusal of a path that
// leaves the root.
func escapesRoot(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == pathEscapesText {
			return true
		}
	}
	return false
}

// Put implements Sink: it writes a temporary file in the key's folder,
// syncs it, renames it over the key and syncs the folder, so that the key
// holds either the previous file or the whole new one, even after a crash.
// On failure the temporary file is removed. A symbolic link at key is
// replaced by the file (what it pointed to is left alone); a key under a
// link that leads out of the folder fails with ErrAccessDenied and creates
// nothing.
func (s *fileSink) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := validateKey(key); err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	root, err := s.openRoot()
	if err != nil {
		return Object{}, s.fail(ctx, "put", key, err)
	}
	defer root.Close()
	name := filepath.FromSlash(key)
	dir := filepath.Dir(name)
	var (
		tmp     *os.File
		tmpName string
	)
	// A concurrent Delete may remove an emptied folder between MkdirAll
	// and createTemp: try again once.
	for attempt := 0; ; attempt++ {
		err := root.MkdirAll(dir, 0o750)
		if err == nil {
			tmp, tmpName, err = createTemp(root, dir)
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
		err = root.Rename(tmpName, name)
	}
	if err != nil {
		_ = root.Remove(tmpName)
		return Object{}, s.fail(ctx, "put", key, s.fileError(err))
	}
	if err := syncDir(root, dir); err != nil {
		// The rename may not survive a crash: report the failure, and
		// leave no object that the caller would believe was not written.
		_ = root.Remove(name)
		return Object{}, s.fail(ctx, "put", key, s.fileError(err))
	}
	return obj, nil
}

// createTemp creates a new file, readable by its owner only, in the folder
// dir of root (os.CreateTemp has no Root counterpart). It returns the file
// and its name in root.
func createTemp(root *os.Root, dir string) (*os.File, string, error) {
	for try := 0; ; try++ {
		name := filepath.Join(dir, tempPrefix+strconv.FormatUint(rand.Uint64(), 36))
		// O_EXCL: never an existing file, nor a link planted at the name.
		f, err := root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) && try < 100 {
			continue
		}
		return f, name, err
	}
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

// syncDir makes a rename in the folder dir of root durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// Open implements Sink. A key under, or at, a symbolic link that leads out
// of the folder fails with ErrAccessDenied.
func (s *fileSink) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := validateKey(key); err != nil {
		// No file can have this key.
		return nil, s.fail(ctx, "open", key, &sdkError{kind: ErrNotFound, err: err})
	}
	root, err := s.openRoot()
	if err != nil {
		return nil, s.fail(ctx, "open", key, err)
	}
	// The file stays open after its Root is closed.
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(key))
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
// names, and skips the temporary files of Puts under way. It does not
// follow symbolic links: a link (to a file or a folder, inside the folder
// or out of it) is neither reported nor walked into, and a prefix whose
// folder is reached through a link lists nothing.
func (s *fileSink) List(ctx context.Context, prefix string) ([]Object, error) {
	root, err := s.openRoot()
	if err != nil {
		return nil, s.fail(ctx, "list", prefix, err)
	}
	defer root.Close()
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
		if validateKey(dir) != nil {
			return nil, nil // no stored key can start with it
		}
	}
	folder, err := openFolder(root, dir)
	if err != nil {
		return nil, s.fail(ctx, "list", prefix, s.fileError(err))
	}
	if folder == nil {
		return nil, nil // the folder is missing, or is not one
	}
	if folder != root {
		defer folder.Close()
	}
	var objects []Object
	if err := walk(ctx, folder, dir, prefix, &objects); err != nil {
		return nil, s.fail(ctx, "list", prefix, s.fileError(err))
	}
	// A walk goes folder by folder ("a/b" before "a-c"); the contract is
	// byte order of the whole key.
	sort.Slice(objects, func(i, j int) bool { return objects[i].Key < objects[j].Key })
	return objects, nil
}

// openFolder opens the folder of root that dir names ("/"-separated, ""
// for root itself) one segment at a time, through no symbolic link. It
// returns nil and no error when there is no such folder (a segment is
// missing, a file or a link). The caller closes the folder unless it is
// root.
func openFolder(root *os.Root, dir string) (*os.Root, error) {
	if dir == "" {
		return root, nil
	}
	folder := root
	closeFolder := func() {
		if folder != root {
			_ = folder.Close()
		}
	}
	for seg := range strings.SplitSeq(dir, "/") {
		info, err := folder.Lstat(seg)
		if err == nil && !info.IsDir() {
			closeFolder()
			return nil, nil // a file or a link
		}
		var next *os.Root
		if err == nil {
			next, err = folder.OpenRoot(seg)
		}
		closeFolder()
		if skippable(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		folder = next
	}
	return folder, nil
}

// walk appends to objects the files in folder (whose key is dir, "" for
// the sink's folder) and in its sub-folders whose keys start with prefix.
// The file system tells each entry's type without following links, so
// links are skipped; a folder replaced by a link while walking may still
// be entered, but only through folder, which keeps the walk inside.
func walk(ctx context.Context, folder *os.Root, dir, prefix string, objects *[]Object) error {
	f, err := folder.Open(".")
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	_ = f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		key := name
		if dir != "" {
			key = dir + "/" + name
		}
		switch {
		case strings.HasPrefix(name, tempPrefix):
		case e.IsDir():
			// Every key below starts with key + "/".
			if !strings.HasPrefix(key+"/", prefix) {
				continue
			}
			sub, err := folder.OpenRoot(name)
			if skippable(err) {
				continue // deleted, or replaced by a file or a link, while listing
			}
			if err != nil {
				return err
			}
			err = walk(ctx, sub, key, prefix, objects)
			_ = sub.Close()
			if err != nil {
				return err
			}
		case e.Type().IsRegular() && strings.HasPrefix(key, prefix):
			// folder.Lstat, not e.Info, which would stat by path.
			info, err := folder.Lstat(name)
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return err
			}
			if info.Mode().IsRegular() {
				*objects = append(*objects, Object{Key: key, Size: info.Size()})
			}
		}
	}
	return nil
}

// skippable reports whether err, from opening a folder that List walks
// into, means that there is no folder to list there: it is missing, is a
// file, or is a link that leads out.
func skippable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || escapesRoot(err)
}

// Delete implements Sink. It also removes the folders that the deletion
// left empty, up to (not including) the root. A symbolic link at key is
// removed itself; a key under a link that leads out of the folder fails
// with ErrAccessDenied and removes nothing.
func (s *fileSink) Delete(ctx context.Context, key string) error {
	if validateKey(key) != nil {
		return nil // no file can have this key
	}
	root, err := s.openRoot()
	if err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	defer root.Close()
	name := filepath.FromSlash(key)
	if info, err := root.Lstat(name); err == nil && info.IsDir() {
		return nil // a folder of other keys, not an object
	}
	err = root.Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.fail(ctx, "delete", key, s.fileError(err))
	}
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		name := filepath.FromSlash(dir)
		// Remove would also unlink a link to a folder: only real folders
		// go. Fails, harmlessly, on the first folder that is not empty.
		if info, err := root.Lstat(name); err != nil || !info.IsDir() || root.Remove(name) != nil {
			break
		}
	}
	return nil
}
