// Package testenv tells a test what scripts/test.sh set up for it: the
// programs and servers it names in environment variables. It imports the
// standard library only, so that any package's tests can use it without
// depending on the store or the sinks.
package testenv

import (
	"os"
	"testing"
)

// Require returns the environment variable name, which scripts/test.sh
// sets to a program or server that a test needs. When it is empty the
// test is skipped with hint, except under CI=true, where the missing
// program fails the run.
func Require(t testing.TB, name, hint string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set: " + hint
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: fails the run)")
		}
		t.Skip(msg)
	}
	return v
}
