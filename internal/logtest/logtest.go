// Package logtest captures what code under test writes: log lines and the
// output of processes, read while they are still being written. Test
// helpers only; it imports nothing of audex.
package logtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// Buffer is a bytes.Buffer that one goroutine may write while another
// reads it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p; it never fails.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns the last n lines written so far.
func (b *Buffer) Tail(n int) string {
	lines := strings.SplitAfter(b.String(), "\n")
	if last := len(lines) - 1; lines[last] == "" {
		lines = lines[:last]
	}
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// NewLogger returns a logger of every level that writes JSON lines into
// the returned buffer.
func NewLogger() (*slog.Logger, *Buffer) {
	buf := &Buffer{}
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// ListenAddr returns the address of the first log line with message msg
// (api_listening, worker_metrics_listening) written so far, or "" before
// it.
func (b *Buffer) ListenAddr(msg string) string {
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == msg {
			return line.Addr
		}
	}
	return ""
}
