package api

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// Limits keep one tenant's requests from making another's wait (docs/api.md:
// tenants are walls under load too). Zero fields take no limit, except
// DownloadMinRate (its zero is the default) and SummaryBudget (zero: the
// pool's statement budget).
type Limits struct {
	// TenantRequests caps the requests of one tenant that this process
	// works at once (downloads apart), TenantSummaries its summaries and
	// trails among them (the requests that cost the database most). A
	// request past a cap waits up to admissionWait for a slot, then gets
	// 429.
	TenantRequests  int
	TenantSummaries int
	// Requests caps the requests of all tenants that this process works
	// at once (downloads apart); past it a request waits up to
	// admissionWait, then gets 503.
	Requests int
	// TenantDownloads caps one tenant's downloads at once (429 past it),
	// Downloads all downloads at once (503 past it).
	TenantDownloads int
	Downloads       int
	// DownloadMinRate is the slowest, in bytes per second, that a client
	// may read a download before it is cut off (zero:
	// config.DefaultLimits').
	DownloadMinRate int64
	// SummaryBudget is each summary statement's time budget.
	SummaryBudget time.Duration
}

// admissionWait is how long a request waits for one of its tenant's slots
// before it is refused: long enough to smooth a burst, short enough that
// a client hears back well within its timeouts.
const admissionWait = 2 * time.Second

// busyRetryAfter is the Retry-After of a request refused for want of a
// slot.
const busyRetryAfter = time.Second

// work is the kind of a route's work, for admission.
type work int

const (
	// workInteractive is most requests: short, on the tenant's request
	// slots.
	workInteractive work = iota
	// workSummary is a summary or a trail: on a summary slot as well.
	workSummary
	// workDownload is a download: long-running, admitted by the download
	// caps alone, at once or not at all.
	workDownload
)

// admission holds the slots of requests in flight, per tenant and in all.
type admission struct {
	limits Limits

	mu        sync.Mutex
	requests  map[string]chan struct{} // tenant -> a semaphore of TenantRequests
	summaries map[string]chan struct{} // tenant -> a semaphore of TenantSummaries
	all       chan struct{}            // a semaphore of Requests (nil: no limit)
	downloads map[string]int           // tenant -> downloads in flight
	total     int                      // downloads in flight
}

func newAdmission(limits Limits) *admission {
	a := &admission{limits: limits, requests: map[string]chan struct{}{}, summaries: map[string]chan struct{}{}, downloads: map[string]int{}}
	if limits.Requests > 0 {
		a.all = make(chan struct{}, limits.Requests)
	}
	return a
}

// admit takes the slots of a request of tenant doing work and returns the
// function that gives them back, or the error to answer with (429 or 503,
// with a Retry-After).
func (a *admission) admit(ctx context.Context, tenant string, w work) (release func(), err error) {
	if w == workDownload {
		return a.admitDownload(tenant)
	}
	releaseSummary := func() {}
	if w == workSummary {
		if releaseSummary, err = a.take(ctx, a.summaries, tenant, a.limits.TenantSummaries); err != nil {
			return nil, err
		}
	}
	releaseRequest, err := a.take(ctx, a.requests, tenant, a.limits.TenantRequests)
	if err != nil {
		releaseSummary()
		return nil, err
	}
	releaseAll := func() {}
	if a.all != nil {
		if err := acquire(ctx, a.all); err != nil {
			releaseRequest()
			releaseSummary()
			if errors.Is(err, errBusy) {
				err = &Error{Code: CodeUnavailable, RetryAfter: busyRetryAfter, Message: "the server is working as many requests as it can; retry after the time in Retry-After"}
			}
			return nil, err
		}
		releaseAll = func() { <-a.all }
	}
	return func() { releaseAll(); releaseRequest(); releaseSummary() }, nil
}

// take takes one of tenant's slots of a semaphore of size n (0: no limit)
// from sems, waiting up to admissionWait.
func (a *admission) take(ctx context.Context, sems map[string]chan struct{}, tenant string, n int) (release func(), err error) {
	if n <= 0 {
		return func() {}, nil
	}
	a.mu.Lock()
	sem, ok := sems[tenant]
	if !ok {
		sem = make(chan struct{}, n)
		sems[tenant] = sem
	}
	a.mu.Unlock()
	if err := acquire(ctx, sem); err != nil {
		if errors.Is(err, errBusy) {
			err = &Error{Code: CodeRateLimited, RetryAfter: busyRetryAfter,
				Message: "too many requests of this tenant are in progress; retry after the time in Retry-After"}
		}
		return nil, err
	}
	return func() { <-sem }, nil
}

// errBusy means no slot came free within admissionWait.
var errBusy = errors.New("no slot free")

// acquire takes a slot of sem, waiting up to admissionWait (errBusy) or
// until ctx ends.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(admissionWait)
	defer timer.Stop()
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errBusy
	}
}

// admitDownload takes a download slot of tenant and of the process, at
// once or not at all.
func (a *admission) admitDownload(tenant string) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.limits.TenantDownloads > 0 && a.downloads[tenant] >= a.limits.TenantDownloads:
		return nil, &Error{Code: CodeRateLimited, RetryAfter: busyRetryAfter, Message: "this tenant already has " + strconv.Itoa(a.limits.TenantDownloads) + " downloads in progress; retry after the time in Retry-After, or use an export job"}
	case a.limits.Downloads > 0 && a.total >= a.limits.Downloads:
		return nil, &Error{Code: CodeUnavailable, RetryAfter: busyRetryAfter, Message: "the server is streaming as many downloads as it can; retry after the time in Retry-After, or use an export job"}
	}
	a.downloads[tenant]++
	a.total++
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.total--
		if a.downloads[tenant]--; a.downloads[tenant] == 0 {
			delete(a.downloads, tenant)
		}
	}, nil
}
