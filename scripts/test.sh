#!/usr/bin/env bash
# `make test`: the whole test suite against a real PostgreSQL, started (and
# installed) when none answers. Each test binary clones its own database
# from a migrated template (internal/storetest), so packages run in
# parallel. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

admin=$(AUDEX_PG_FAST=1 scripts/postgres.sh "${AUDEX_TEST_DATABASE_URL:-}")
export AUDEX_TEST_DATABASE_URL=$admin

# Drop the databases that earlier runs left behind.
psql "$admin" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'audex\_test\_%'" |
  while read -r db; do psql "$admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done

go test -count=1 "$@" ./...
