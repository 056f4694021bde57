package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/audex-dev/audex"
)

// EmitterOptions tune an Emitter; zero values take the defaults.
type EmitterOptions struct {
	// BatchSize is how many events one request carries, and the count at
	// which a flush starts without waiting for the interval (default 500,
	// at most 1000).
	BatchSize int
	// FlushInterval is the longest an emitted event waits before it is
	// sent (default 1 s).
	FlushInterval time.Duration
	// MaxBuffered is how many events may wait; Emit blocks beyond it until
	// a flush makes room (default 100,000).
	MaxBuffered int
	// OnError is called with a batch that could not be stored, retries
	// spent (from the emitter's goroutine). Nil: the errors are returned
	// by the next Flush or by Close.
	OnError func(events []NewEvent, err error)
}

// Emitter batches events in the background and ingests them: a batch goes
// when BatchSize events wait, when the oldest has waited FlushInterval, on
// Flush and on Close. Every event gets an id before it is queued, so a
// batch sent again after a lost answer is stored once. Safe for concurrent
// use.
type Emitter struct {
	c    *Client
	opts EmitterOptions

	mu      sync.Mutex
	room    *sync.Cond // signalled when a flush took events
	pending []NewEvent
	closed  bool
	failed  []error

	kick       chan struct{}   // a batch is full
	flushes    chan chan error // Flush asks for everything to go
	closing    chan chan error // Close asks for everything to go, then the end
	done       chan struct{}   // the goroutine ended
	sendCtx    context.Context // the ingests' context, ended by Close's
	cancelSend context.CancelFunc
}

// NewEmitter starts an emitter. Close it to send what is left.
func (c *Client) NewEmitter(o EmitterOptions) *Emitter {
	if o.BatchSize <= 0 || o.BatchSize > 1000 {
		o.BatchSize = min(max(o.BatchSize, 500), 1000)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxBuffered < o.BatchSize {
		o.MaxBuffered = max(100_000, o.BatchSize)
	}
	e := &Emitter{c: c, opts: o, kick: make(chan struct{}, 1), flushes: make(chan chan error),
		closing: make(chan chan error, 1), done: make(chan struct{})}
	e.room = sync.NewCond(&e.mu)
	e.sendCtx, e.cancelSend = context.WithCancel(context.Background())
	go e.run()
	return e
}

// ErrEmitterClosed is returned by Emit after Close.
var ErrEmitterClosed = errors.New("audex: emitter is closed")

// Emit queues an event, giving it an id if it has none. It blocks while
// MaxBuffered events wait.
func (e *Emitter) Emit(ev NewEvent) error {
	if ev.ID == "" {
		ev.ID = audex.NewID("evt")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.pending) >= e.opts.MaxBuffered && !e.closed {
		e.room.Wait()
	}
	if e.closed {
		return ErrEmitterClosed
	}
	e.pending = append(e.pending, ev)
	if len(e.pending) >= e.opts.BatchSize {
		select {
		case e.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Flush sends every event emitted before it and returns the errors of the
// batches that failed since the last Flush.
func (e *Emitter) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case e.flushes <- reply:
	case <-e.done:
		return ErrEmitterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking events, sends all that wait and returns the errors of
// the batches that failed (with OnError nil). ctx bounds the sending: when
// it ends, the batches not stored yet fail with its error.
func (e *Emitter) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrEmitterClosed
	}
	e.closed = true
	e.room.Broadcast()
	e.mu.Unlock()
	defer context.AfterFunc(ctx, e.cancelSend)()
	reply := make(chan error, 1)
	e.closing <- reply
	<-e.done
	e.cancelSend()
	return <-reply
}

// run sends batches until Close.
func (e *Emitter) run() {
	defer close(e.done)
	ticker := time.NewTicker(e.opts.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.C:
			e.send(false)
		case <-e.kick:
			e.send(true)
		case reply := <-e.flushes:
			reply <- e.sendAll()
		case reply := <-e.closing:
			reply <- e.sendAll()
			return
		}
	}
}

// sendAll sends everything that waits and returns the errors of the
// batches that failed since the last time.
func (e *Emitter) sendAll() error {
	e.send(false)
	e.mu.Lock()
	defer e.mu.Unlock()
	err := errors.Join(e.failed...)
	e.failed = nil
	return err
}

// send ingests what waits, BatchSize at a time; with fullOnly, only full
// batches.
func (e *Emitter) send(fullOnly bool) {
	for {
		e.mu.Lock()
		n := min(len(e.pending), e.opts.BatchSize)
		if n == 0 || (fullOnly && n < e.opts.BatchSize) {
			e.mu.Unlock()
			return
		}
		batch := e.pending[:n:n]
		e.mu.Unlock()
		_, err := e.c.Events.Ingest(e.sendCtx, batch)
		e.mu.Lock()
		e.pending = e.pending[n:]
		e.room.Broadcast()
		if err != nil && e.opts.OnError == nil {
			e.failed = append(e.failed, fmt.Errorf("audex: a batch of %d events was not stored: %w", n, err))
		}
		e.mu.Unlock()
		if err != nil && e.opts.OnError != nil {
			e.opts.OnError(batch, err)
		}
	}
}
