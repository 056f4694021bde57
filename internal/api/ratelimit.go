package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is the per-key request rate that one API process allows: a
// token bucket of Burst requests refilled at PerSecond. Zero PerSecond
// turns limiting off.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// keyLimiter holds one token bucket per API key id. Keys are few (each is
// a row of api_keys), so the buckets are kept for the process's life.
type keyLimiter struct {
	limit RateLimit
	mu    sync.Mutex
	keys  map[string]*rate.Limiter
}

func newKeyLimiter(limit RateLimit) *keyLimiter {
	if limit.PerSecond <= 0 {
		return nil
	}
	if limit.Burst < 1 {
		limit.Burst = max(1, int(math.Ceil(limit.PerSecond)))
	}
	return &keyLimiter{limit: limit, keys: map[string]*rate.Limiter{}}
}

// allow takes a token of keyID's bucket, or says how long until one is
// there.
func (l *keyLimiter) allow(keyID string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim, ok := l.keys[keyID]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.limit.PerSecond), l.limit.Burst)
		l.keys[keyID] = lim
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}

// rateLimited answers 429 with Retry-After (whole seconds, at least 1)
// when key has used up its bucket; nil otherwise.
func (s *Server) rateLimited(w http.ResponseWriter, keyID string) error {
	if s.limiter == nil {
		return nil
	}
	ok, delay := s.limiter.allow(keyID, time.Now())
	if ok {
		return nil
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(delay.Seconds())))))
	return &Error{Code: CodeRateLimited, Message: "too many requests for this API key; retry after the time in Retry-After"}
}
