package api

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/logtest"
)

// The unit tests of what hostile or unlucky input reaches below the
// routes: answers that cannot be encoded, times at the ends of the range,
// and the memory of the failed-authentication budget.

func TestWriteJSON(t *testing.T) {
	t.Parallel()

	t.Run("AValueThatCannotBeEncodedIs500InTheErrorShapeAndLogged", func(t *testing.T) {
		t.Parallel()
		for name, v := range map[string]any{
			"Channel":       map[string]any{"c": make(chan int)},
			"TimeAfter9999": struct{ T time.Time }{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			"NaN":           map[string]float64{"n": math.NaN()},
		} {
			logger, logs := logtest.NewLogger()
			s := &Server{logger: logger}
			rec := httptest.NewRecorder()
			s.writeJSON(rec, http.StatusOK, v)
			requireInternalError(t, rec, name)
			require.Contains(t, logs.String(), `"msg":"response_encode_failed"`, name)
			require.Contains(t, logs.String(), `"status":200`, name)
		}
	})

	t.Run("AnEncodableValueIsSentAsEncodingJSONEncodesIt", func(t *testing.T) {
		t.Parallel()
		s := &Server{logger: slog.New(slog.DiscardHandler)}
		v := map[string]any{"a": "<&>\u2028", "n": 1}
		rec := httptest.NewRecorder()
		s.writeJSON(rec, http.StatusCreated, v)
		require.Equal(t, http.StatusCreated, rec.Code)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
		want, err := json.Marshal(v)
		require.NoError(t, err)
		require.Equal(t, string(want)+"\n", rec.Body.String())
	})

	t.Run("AnErrorWithARetryAfterSetsTheHeader", func(t *testing.T) {
		t.Parallel()
		s := &Server{logger: slog.New(slog.DiscardHandler)}
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest("GET", "/", nil), &Error{Code: CodeRateLimited, Message: "slow down", RetryAfter: 2500 * time.Millisecond})
		require.Equal(t, http.StatusTooManyRequests, rec.Code)
		require.Equal(t, "3", rec.Header().Get("Retry-After"))
		require.JSONEq(t, `{"error":{"code":"rate_limited","message":"slow down"}}`, rec.Body.String())
	})
}

func requireInternalError(t *testing.T, rec *httptest.ResponseRecorder, name string) {
	t.Helper()
	require.Equal(t, http.StatusInternalServerError, rec.Code, name)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), name)
	require.JSONEq(t, `{"error":{"code":"internal","message":"internal error"}}`, rec.Body.String(), name)
}

func TestParseTimeRange(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]string{
		"0001-01-01":                       "0001-01-01T00:00:00Z",
		"0001-01-01T00:00:00Z":             "0001-01-01T00:00:00Z",
		"0001-01-01T05:00:00+05:00":        "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999Z":      "9999-12-31T23:59:59.999999Z",
		"9999-12-31T23:59:59.999998001Z":   "9999-12-31T23:59:59.999999Z",
		"9999-12-31T18:59:59.999999-05:00": "9999-12-31T23:59:59.999999Z",
		"0000-12-31T23:59:59.999999Z":      "",
		"0000-01-01":                       "",
		"0001-01-01T00:00:00+00:01":        "",
		"9999-12-31T23:59:59.9999991Z":     "",
		"9999-12-31T19:00:00-05:00":        "",
		"9999-12-31T23:59:59-23:59":        "",
	} {
		got, err := parseTime("since", v)
		if want == "" {
			var apiErr *Error
			require.ErrorAs(t, err, &apiErr, v)
			require.Equal(t, CodeInvalidArgument, apiErr.Code, v)
			require.Equal(t, "since", apiErr.Field, v)
			continue
		}
		require.NoError(t, err, v)
		require.Equal(t, want, got.Format(time.RFC3339Nano), v)
	}
}

func TestBuckets(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC)

	t.Run("AnEmptyBucketSaysWhenItHoldsATokenAgain", func(t *testing.T) {
		t.Parallel()
		b := newBuckets(RateLimit{PerSecond: 0.5, Burst: 2}, 0)
		for range 2 {
			_, wait := b.take("a", t0)
			require.Zero(t, wait)
		}
		_, wait := b.take("a", t0)
		require.Equal(t, 2*time.Second, wait)
		_, wait = b.take("b", t0)
		require.Zero(t, wait, "another key has its own bucket")
		_, wait = b.take("a", t0.Add(2*time.Second))
		require.Zero(t, wait)
	})

	t.Run("AGivenBackTokenCanBeTakenAgain", func(t *testing.T) {
		t.Parallel()
		b := newBuckets(RateLimit{PerSecond: 1.0 / 60, Burst: 1}, 0)
		res, wait := b.take("a", t0)
		require.Zero(t, wait)
		giveBack(res, t0)
		_, wait = b.take("a", t0)
		require.Zero(t, wait)
		_, wait = b.take("a", t0)
		require.Positive(t, wait)
	})

	t.Run("HoldTakesOnlyFromABucketThatIsNotFull", func(t *testing.T) {
		t.Parallel()
		b := newBuckets(RateLimit{PerSecond: 1.0 / 60, Burst: 2}, 0)
		res, wait := b.hold("a", t0)
		require.Nil(t, res)
		require.Zero(t, wait)
		require.Zero(t, b.len(), "holding creates no bucket")
		b.take("a", t0)
		res, wait = b.hold("a", t0)
		require.NotNil(t, res)
		require.Zero(t, wait)
		_, wait = b.hold("a", t0)
		require.Equal(t, time.Minute, wait)
		giveBack(res, t0)
		_, wait = b.hold("a", t0)
		require.Zero(t, wait, "the token given back is there")
	})

	t.Run("FullBucketsAreDroppedAndTheCapHolds", func(t *testing.T) {
		t.Parallel()
		b := newBuckets(RateLimit{PerSecond: 1, Burst: 2}, 3)
		for _, key := range []string{"a", "b", "c"} {
			b.take(key, t0)
		}
		require.Equal(t, 3, b.len())
		res, wait := b.take("d", t0)
		require.Nil(t, res, "past the cap a new key is not tracked")
		require.Zero(t, wait, "and not refused")
		require.Equal(t, 3, b.len())

		// One second later each bucket holds 2 tokens again: all are
		// dropped to make room.
		_, wait = b.take("d", t0.Add(time.Second))
		require.Zero(t, wait)
		require.Equal(t, 1, b.len())
	})

	t.Run("IdleBucketsAreDroppedBelowTheCapToo", func(t *testing.T) {
		t.Parallel()
		b := newBuckets(RateLimit{PerSecond: 1, Burst: 1}, 0)
		for i := range 100 {
			b.take(string(rune('a'+i)), t0)
		}
		require.Equal(t, 100, b.len())
		b.take("late", t0.Add(sweepInterval))
		require.Equal(t, 1, b.len())
	})

	t.Run("ANilSetAlwaysHasATokenForYou", func(t *testing.T) {
		t.Parallel()
		var b *buckets
		res, wait := b.take("a", t0)
		require.Nil(t, res)
		require.Zero(t, wait)
	})
}

func TestClientAddress(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"203.0.113.7:4000":             "203.0.113.7",
		"[::ffff:203.0.113.7]:4000":    "203.0.113.7",
		"[2001:db8:1:2:3:4:5:6]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:1":          "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":            "fe80::/64",
		"@":                            "@",
		"":                             "",
		"not an address but something": "not an address but something",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		require.Equal(t, want, clientAddress(r), remote)
	}
}
