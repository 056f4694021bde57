package api

import (
	"math"
	"net/http"
	"net/netip"
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

// The budget of failed authentications (401s) per client address: a
// bucket of authFailureBurst refilled over authFailureWindow, so 20 a
// minute. Past it the address gets 429 before its key is looked up, even
// a correct key, until a failure's worth has refilled.
const (
	authFailureBurst  = 20
	authFailureWindow = time.Minute
	// maxAuthFailureAddresses bounds the addresses tracked at once (each
	// entry is a few hundred bytes). Beyond it, new addresses go
	// untracked until buckets refill and are dropped: the process stays
	// up and open under an attack from that many addresses, rather than
	// refusing everyone.
	maxAuthFailureAddresses = 50_000
)

// rateLimiters hold the server's token buckets: each API key's requests
// (nil when RateLimit is off) and each client address's failed
// authentications (always on).
type rateLimiters struct {
	requests     *buckets
	authFailures *buckets
}

func newRateLimiters(limit RateLimit) *rateLimiters {
	l := &rateLimiters{authFailures: newBuckets(RateLimit{
		PerSecond: authFailureBurst / authFailureWindow.Seconds(),
		Burst:     authFailureBurst,
	}, maxAuthFailureAddresses)}
	if limit.PerSecond > 0 {
		if limit.Burst < 1 {
			limit.Burst = max(1, int(math.Ceil(limit.PerSecond)))
		}
		// API keys are rows of api_keys and only authenticated ones get a
		// bucket: no cap needed.
		l.requests = newBuckets(limit, 0)
	}
	return l
}

// allow takes a token of keyID's request bucket, or says how long until
// one is there.
func (l *rateLimiters) allow(keyID string, now time.Time) (bool, time.Duration) {
	_, wait := l.requests.take(keyID, now) // spent whatever the answer
	return wait == 0, wait
}

// buckets holds one token bucket per key (an API key id, a client
// address): limit.Burst tokens refilled at limit.PerSecond. A bucket that
// has refilled completely is the same as a new one, so such buckets are
// dropped, and at most maxKeys (zero: any number) are held at once.
type buckets struct {
	limit     RateLimit
	maxKeys   int
	mu        sync.Mutex
	m         map[string]*rate.Limiter
	lastSweep time.Time
}

// sweepInterval is how often buckets drops full buckets when it is not
// at its cap; at its cap it looks at most once per sweepMinInterval.
const (
	sweepInterval    = time.Minute
	sweepMinInterval = time.Second
)

func newBuckets(limit RateLimit, maxKeys int) *buckets {
	return &buckets{limit: limit, maxKeys: maxKeys, m: map[string]*rate.Limiter{}}
}

// take takes a token of key's bucket and returns its reservation (which
// can give the token back), or, when the bucket is empty, how long until
// it holds one. A nil *buckets, or a key that cannot be tracked because
// buckets is at its cap, always gets a token, and a nil reservation.
func (b *buckets) take(key string, now time.Time) (*rate.Reservation, time.Duration) {
	if b == nil {
		return nil, 0
	}
	lim := b.bucket(key, now)
	if lim == nil {
		return nil, 0
	}
	res := lim.ReserveN(now, 1)
	if delay := res.DelayFrom(now); delay > 0 {
		res.CancelAt(now)
		return nil, delay
	}
	return res, 0
}

// hold takes a token of key's bucket, as take does, if key has a bucket
// that is not full: a key that has used some of its budget lately.
// Otherwise it takes nothing and returns a nil reservation and no wait.
func (b *buckets) hold(key string, now time.Time) (*rate.Reservation, time.Duration) {
	if b == nil {
		return nil, 0
	}
	b.mu.Lock()
	lim := b.m[key]
	b.mu.Unlock()
	if lim == nil || lim.TokensAt(now) >= float64(b.limit.Burst) {
		return nil, 0
	}
	return b.take(key, now)
}

// giveBack returns the token of res, taken at now, to its bucket.
func giveBack(res *rate.Reservation, now time.Time) {
	if res != nil {
		// At the time of taking: a reservation cancelled later than it
		// was due gives nothing back.
		res.CancelAt(now)
	}
}

// bucket returns key's bucket, creating it, or nil when buckets is at its
// cap even after dropping full buckets.
func (b *buckets) bucket(key string, now time.Time) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	if lim, ok := b.m[key]; ok {
		return lim
	}
	full := b.maxKeys > 0 && len(b.m) >= b.maxKeys
	if since := now.Sub(b.lastSweep); since >= sweepInterval || full && since >= sweepMinInterval {
		b.sweep(now)
		full = b.maxKeys > 0 && len(b.m) >= b.maxKeys
	}
	if full {
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(b.limit.PerSecond), b.limit.Burst)
	b.m[key] = lim
	return lim
}

// sweep drops the buckets that have refilled completely. b.mu is held.
func (b *buckets) sweep(now time.Time) {
	b.lastSweep = now
	for key, lim := range b.m {
		if lim.TokensAt(now) >= float64(b.limit.Burst) {
			delete(b.m, key)
		}
	}
}

// len is the number of buckets held.
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// clientAddress is the key of a request's client for the failed
// authentication budget: the host of r.RemoteAddr, the peer of the
// connection. X-Forwarded-For is not trusted (any client can send it).
// An IPv6 client is counted by its /64, which one host or site usually
// holds whole, so that it cannot get a fresh budget per address.
func clientAddress(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr // not host:port (a Unix socket): one client
	}
	addr := ap.Addr().Unmap().WithZone("")
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// retryAfter is the Retry-After value for a wait: whole seconds, at least
// 1.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// rateLimited returns 429 with a Retry-After when key has used up its
// bucket; nil otherwise.
func (s *Server) rateLimited(keyID string) error {
	if s.limiters.requests == nil {
		return nil
	}
	ok, delay := s.limiters.allow(keyID, time.Now())
	if ok {
		return nil
	}
	return &Error{Code: CodeRateLimited, RetryAfter: delay, Message: "too many requests for this API key; retry after the time in Retry-After"}
}
