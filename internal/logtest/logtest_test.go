package logtest

import "testing"

func TestTail(t *testing.T) {
	var b Buffer
	if got := b.Tail(3); got != "" {
		t.Fatalf("Tail of nothing = %q", got)
	}
	_, _ = b.Write([]byte("one\ntwo\nthree\n"))
	for n, want := range map[int]string{0: "", 1: "three\n", 2: "two\nthree\n", 5: "one\ntwo\nthree\n"} {
		if got := b.Tail(n); got != want {
			t.Errorf("Tail(%d) = %q, want %q", n, got, want)
		}
	}
	_, _ = b.Write([]byte("four, unfinished"))
	if got, want := b.Tail(2), "three\nfour, unfinished"; got != want {
		t.Errorf("Tail(2) with a line being written = %q, want %q", got, want)
	}
}
