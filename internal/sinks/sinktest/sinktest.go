// Package sinktest is the conformance suite of sinks.Sink: every behaviour
// of the interface's contract as a named subtest, run by each backend's
// test against its real server (or folder). It imports sinks and testing
// helpers only.
package sinktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/sinks"
	"github.com/audex-dev/audex/internal/testenv"
)

// RequireEnv returns the environment variable name, which
// scripts/emulators.sh sets when it has started the emulators (see
// testenv.Require).
func RequireEnv(t *testing.T, name string) string {
	t.Helper()
	return testenv.Require(t, name, `start the emulators with eval "$(scripts/emulators.sh start)"`)
}

// RandomName returns prefix followed by random lowercase hex, usable as a
// bucket or container name.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Sizes of the suite's objects. LargeSize spans several parts of every
// backend's multipart upload (and is not a multiple of any part size);
// FailAfter is where the failing readers break, past the first part.
const (
	LargeSize = 24<<20 + 12345
	FailAfter = 17 << 20
)

var errSource = errors.New("sinktest: source failed")

type testBundle struct {
	ctx    context.Context
	sink   sinks.Sink
	prefix string
}

// Run runs every behaviour of the sinks.Sink contract as a parallel
// subtest. newSink is called once per subtest; each subtest works under a
// prefix of its own, so the sinks may share one bucket.
func Run(t *testing.T, newSink func(t *testing.T) sinks.Sink) {
	t.Helper()

	setup := func(t *testing.T) *testBundle {
		t.Helper()
		return &testBundle{ctx: t.Context(), sink: newSink(t), prefix: RandomName("sinktest-") + "/"}
	}

	t.Run("PutThenOpenReturnsSameBytes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.jsonl"
		data := []byte("{\"id\":\"evt_1\"}\n{\"id\":\"evt_2\"}\n")

		obj, err := b.sink.Put(b.ctx, key, bytes.NewReader(data))
		require.NoError(t, err)
		require.Equal(t, sinks.Object{Key: key, Size: int64(len(data)), SHA256: sha256Hex(data)}, obj)
		require.Equal(t, data, readAll(t, b, key))
		requireKeys(t, b, b.prefix, map[string]int64{key: int64(len(data))})
	})

	t.Run("PutOverwritesWholeObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "manifest.json"
		long := bytes.Repeat([]byte("long-version "), 1000)
		short := []byte("short")

		_, err := b.sink.Put(b.ctx, key, bytes.NewReader(long))
		require.NoError(t, err)
		obj, err := b.sink.Put(b.ctx, key, bytes.NewReader(short))
		require.NoError(t, err)
		require.Equal(t, int64(len(short)), obj.Size)
		require.Equal(t, short, readAll(t, b, key))
		requireKeys(t, b, b.prefix, map[string]int64{key: int64(len(short))})
	})

	t.Run("PutThatFailsLeavesNoObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.csv"

		_, err := b.sink.Put(b.ctx, key, failingReader(1000))
		require.ErrorIs(t, err, errSource)
		requireNoObject(t, b, key)
	})

	t.Run("PutThatFailsAfterSeveralPartsLeavesNoObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.csv.gz"

		_, err := b.sink.Put(b.ctx, key, failingReader(FailAfter))
		require.ErrorIs(t, err, errSource)
		requireNoObject(t, b, key)
	})

	t.Run("PutThatFailsNeverLeavesPartialObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.jsonl"
		previous := []byte("the previous, whole object")
		_, err := b.sink.Put(b.ctx, key, bytes.NewReader(previous))
		require.NoError(t, err)

		_, err = b.sink.Put(b.ctx, key, failingReader(FailAfter))
		require.ErrorIs(t, err, errSource)

		// The contract allows the previous object to remain, or none; never
		// a part of the new one.
		rc, err := b.sink.Open(b.ctx, key)
		if errors.Is(err, sinks.ErrNotFound) {
			return
		}
		require.NoError(t, err)
		defer rc.Close()
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.Equal(t, previous, got)
	})

	t.Run("PutHonoursCancelledContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.jsonl"
		ctx, cancel := context.WithCancel(b.ctx)
		cancel()

		_, err := b.sink.Put(ctx, key, bytes.NewReader([]byte("never stored")))
		require.ErrorIs(t, err, context.Canceled)
		requireNoObject(t, b, key)
	})

	t.Run("PutCancelledMidwayLeavesNoObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.jsonl"
		ctx, cancel := context.WithCancel(b.ctx)
		defer cancel()
		// The source goes on giving bytes after the cancel: Put must stop
		// by itself.
		r := &cancellingReader{r: generator(1, LargeSize), after: FailAfter, cancel: cancel}

		start := time.Now()
		_, err := b.sink.Put(ctx, key, r)
		require.ErrorIs(t, err, context.Canceled)
		require.Less(t, time.Since(start), 30*time.Second)
		requireNoObject(t, b, key)
	})

	t.Run("PutStreamsLargeObjectWithCorrectSHA256", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "part-00001.jsonl.gz"
		want := sha256Of(t, generator(2, LargeSize))

		// The object is generated while it is read, never held whole.
		obj, err := b.sink.Put(b.ctx, key, generator(2, LargeSize))
		require.NoError(t, err)
		require.Equal(t, sinks.Object{Key: key, Size: LargeSize, SHA256: want}, obj)

		rc, err := b.sink.Open(b.ctx, key)
		require.NoError(t, err)
		defer rc.Close()
		require.Equal(t, want, sha256Of(t, rc))
		requireKeys(t, b, b.prefix, map[string]int64{key: LargeSize})
	})

	t.Run("EmptyObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "empty.csv"

		obj, err := b.sink.Put(b.ctx, key, bytes.NewReader(nil))
		require.NoError(t, err)
		require.Equal(t, sinks.Object{Key: key, Size: 0, SHA256: sha256Hex(nil)}, obj)
		require.Empty(t, readAll(t, b, key))
		requireKeys(t, b, b.prefix, map[string]int64{key: 0})
	})

	t.Run("OpenMissingIsErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		_, err := b.sink.Open(b.ctx, b.prefix+"missing.json")
		require.ErrorIs(t, err, sinks.ErrNotFound)
		require.False(t, sinks.IsPermanent(err))
	})

	t.Run("DeleteRemovesObject", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, other := b.prefix+"a/part-00001.csv", b.prefix+"a/part-00002.csv"
		for _, k := range []string{key, other} {
			_, err := b.sink.Put(b.ctx, k, strings.NewReader(k))
			require.NoError(t, err)
		}

		require.NoError(t, b.sink.Delete(b.ctx, key))
		requireNoObject(t, b, key)
		require.Equal(t, []byte(other), readAll(t, b, other))
	})

	t.Run("DeleteMissingSucceeds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := b.prefix + "never-written.json"

		require.NoError(t, b.sink.Delete(b.ctx, key))
		_, err := b.sink.Put(b.ctx, key, strings.NewReader("x"))
		require.NoError(t, err)
		require.NoError(t, b.sink.Delete(b.ctx, key))
		require.NoError(t, b.sink.Delete(b.ctx, key))
	})

	t.Run("ListReturnsKeysInOrderUnderPrefix", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := b.prefix
		// Put in a shuffled order. In byte order '-' < '/' < 'c', so
		// "a/b-1" < "a/b/x" < "a/bc/1", which a folder-by-folder walk or a
		// locale collation would get wrong.
		keys := []string{p + "a/bc/1", p + "a/b/y/z", p + "a/b-1", p + "a/b/x", p + "a/a", p + "b", p + "a/b/Y"}
		for _, k := range keys {
			_, err := b.sink.Put(b.ctx, k, strings.NewReader(k))
			require.NoError(t, err)
		}

		require.Equal(t, []string{p + "a/b/Y", p + "a/b/x", p + "a/b/y/z"}, listKeys(t, b, p+"a/b/"),
			"a/b/ holds its own keys, not those of the sibling a/bc/")
		require.Equal(t, []string{p + "a/b-1", p + "a/b/Y", p + "a/b/x", p + "a/b/y/z", p + "a/bc/1"}, listKeys(t, b, p+"a/b"),
			"a prefix that ends mid-name matches every key that starts with it, in byte order")
		all := slices.Clone(keys)
		slices.Sort(all)
		require.Equal(t, all, listKeys(t, b, p))
		require.Empty(t, listKeys(t, b, p+"a/bc/2"))
	})

	t.Run("ListOfUnknownPrefixIsEmpty", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		objects, err := b.sink.List(b.ctx, b.prefix)
		require.NoError(t, err)
		require.Empty(t, objects)
		objects, err = b.sink.List(b.ctx, b.prefix+"deeper/still/")
		require.NoError(t, err)
		require.Empty(t, objects)
	})

	t.Run("ListReturnsMoreThanOnePageOfKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Past the 1,000 keys of one S3 or GCS listing page.
		const n = 1010
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("%sexp/part-%05d.jsonl", b.prefix, i+1)
		}
		parallel(t, 16, len(keys), func(i int) error {
			_, err := b.sink.Put(b.ctx, keys[i], strings.NewReader("x"))
			return err
		})

		require.Equal(t, keys, listKeys(t, b, b.prefix))
	})

	t.Run("KeysWithNestedPathsRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		keys := []string{
			b.prefix + "exports/april/exp_01JT3Q6Y8V2K7W3M5N9P0R4S6T/part-00001.jsonl.gz",
			b.prefix + "exports/april/exp_01JT3Q6Y8V2K7W3M5N9P0R4S6T/manifest.json",
			b.prefix + "a/b/c/d/e/f/g/h/deep.csv",
		}
		for _, k := range keys {
			_, err := b.sink.Put(b.ctx, k, strings.NewReader(k))
			require.NoError(t, err)
		}

		for _, k := range keys {
			require.Equal(t, []byte(k), readAll(t, b, k))
		}
		require.Equal(t, []string{keys[1], keys[0]}, listKeys(t, b, b.prefix+"exports/april/"))
		require.Equal(t, []string{keys[2]}, listKeys(t, b, b.prefix+"a/b/c/"))
	})

	t.Run("KeysWithSpecialCharactersRoundTrip", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var keys []string
		for _, name := range []string{"with space", "plus+sign", "equals=and&amp", "percent%41", "tilde~", "colon:x", "quote'd", "unicode-é-日本", "semi;comma,at@"} {
			keys = append(keys, b.prefix+name+"/part-00001.csv")
		}
		for _, k := range keys {
			_, err := b.sink.Put(b.ctx, k, strings.NewReader(k))
			require.NoError(t, err, k)
		}

		for _, k := range keys {
			require.Equal(t, []byte(k), readAll(t, b, k), k)
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		require.Equal(t, want, listKeys(t, b, b.prefix))
	})

	t.Run("PutRejectsInvalidKeys", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		for _, key := range []string{"", "/" + b.prefix + "abs", b.prefix + "../escape", b.prefix + "a/./b", b.prefix + "a//b", b.prefix + "dir/", b.prefix + ".."} {
			_, err := b.sink.Put(b.ctx, key, strings.NewReader("x"))
			require.Error(t, err, "key %q", key)
		}
		require.Empty(t, listKeys(t, b, b.prefix))
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const distinct, same = 16, 8
		shared := b.prefix + "shared.json"
		contents := make(map[string]bool)
		for i := range same {
			contents[string(bytes.Repeat([]byte{byte('a' + i)}, 64<<10))] = true
		}
		var mu sync.Mutex
		got := map[string]sinks.Object{}
		parallel(t, distinct+same, distinct+same, func(i int) error {
			key, data := fmt.Sprintf("%sp/%02d", b.prefix, i), []byte(fmt.Sprintf("object %d", i))
			if i >= distinct {
				key, data = shared, bytes.Repeat([]byte{byte('a' + i - distinct)}, 64<<10)
			}
			obj, err := b.sink.Put(b.ctx, key, bytes.NewReader(data))
			if err != nil {
				return err
			}
			if obj.SHA256 != sha256Hex(data) {
				return fmt.Errorf("put %s: sha256 %s, want %s", key, obj.SHA256, sha256Hex(data))
			}
			mu.Lock()
			got[key] = obj
			mu.Unlock()
			return nil
		})

		for i := range distinct {
			key := fmt.Sprintf("%sp/%02d", b.prefix, i)
			require.Equal(t, fmt.Sprintf("object %d", i), string(readAll(t, b, key)))
		}
		require.True(t, contents[string(readAll(t, b, shared))], "the shared key holds one whole version")
		require.Len(t, listKeys(t, b, b.prefix), distinct+1)
	})
}

// RequirePutFails checks that s, a sink whose bucket is missing or whose
// credentials are wrong, fails Put (of a small and of a multipart-sized
// object) quickly, with an error that wraps want, is permanent, names the
// bucket and contains none of the secrets.
func RequirePutFails(t *testing.T, s sinks.Sink, want error, bucket string, secrets ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, size := range []int64{100, FailAfter} {
		start := time.Now()
		_, err := s.Put(ctx, RandomName("sinktest-")+"/part-00001.jsonl", generator(3, size))
		elapsed := time.Since(start)

		require.ErrorIs(t, err, want, "%d-byte Put", size)
		require.True(t, sinks.IsPermanent(err), "a %v is permanent", want)
		require.Less(t, elapsed, 5*time.Second, "a permanent failure comes back at once, not after retries")
		require.Contains(t, err.Error(), bucket, "the error names the bucket")
		for _, secret := range secrets {
			require.NotContains(t, err.Error(), secret, "the error shows no secret")
		}
	}
	if errors.Is(want, sinks.ErrBucketNotFound) {
		_, err := s.List(ctx, "sinktest-")
		require.ErrorIs(t, err, sinks.ErrBucketNotFound, "List on a missing bucket")
		require.Contains(t, err.Error(), bucket)
	}
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func sha256Of(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	_, err := io.Copy(h, r)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

func readAll(t *testing.T, b *testBundle, key string) []byte {
	t.Helper()
	rc, err := b.sink.Open(b.ctx, key)
	require.NoError(t, err, "open %q", key)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return data
}

func listKeys(t *testing.T, b *testBundle, prefix string) []string {
	t.Helper()
	objects, err := b.sink.List(b.ctx, prefix)
	require.NoError(t, err)
	keys := []string{}
	for _, o := range objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// requireKeys checks that List(prefix) returns exactly these keys and sizes.
func requireKeys(t *testing.T, b *testBundle, prefix string, want map[string]int64) {
	t.Helper()
	objects, err := b.sink.List(b.ctx, prefix)
	require.NoError(t, err)
	got := map[string]int64{}
	for _, o := range objects {
		got[o.Key] = o.Size
	}
	require.Equal(t, want, got)
}

// requireNoObject checks that nothing is stored at key, by Open and List.
func requireNoObject(t *testing.T, b *testBundle, key string) {
	t.Helper()
	_, err := b.sink.Open(b.ctx, key)
	require.ErrorIs(t, err, sinks.ErrNotFound)
	require.Empty(t, listKeys(t, b, key), "no object, whole or partial, at %q", key)
}

// generator returns size pseudo-random bytes, the same for the same seed,
// made while they are read.
func generator(seed uint64, size int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(mrand.NewChaCha8(s), size)
}

// failingReader gives n bytes, then errSource.
func failingReader(n int64) io.Reader {
	return io.MultiReader(generator(4, n), errReader{})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errSource }

// cancellingReader cancels after giving `after` bytes, and goes on giving
// bytes.
type cancellingReader struct {
	r      io.Reader
	n      int64
	after  int64
	cancel context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

// parallel runs do(0..n-1) on `workers` goroutines and fails t on the
// first error.
func parallel(t *testing.T, workers, n int, do func(i int) error) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	require.NoError(t, first)
}
