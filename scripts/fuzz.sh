#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of the module for FUZZTIME each
# (default 30s), one after another. `make test` already replays their
# seeds and any failing inputs saved under testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz.sh: $pkg $target for $fuzztime" >&2
    go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"
  done
done
