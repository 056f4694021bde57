#!/usr/bin/env bash
# `make test`: the whole test suite against a real PostgreSQL, started (and
# installed) when none answers, and real object-store emulators
# (scripts/emulators.sh), and Debian's Chromium for the browser test
# (scripts/chromium.sh). Each test binary clones its own database
# from a migrated template (internal/storetest), so packages run in
# parallel. Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

admin=$(AUDEX_PG_FAST=1 scripts/postgres.sh "${AUDEX_TEST_DATABASE_URL:-}")
export AUDEX_TEST_DATABASE_URL=$admin
# The server programs, for the tests that restart a PostgreSQL of their own.
AUDEX_TEST_PG_BIN=$(scripts/postgres.sh --bindir)
export AUDEX_TEST_PG_BIN

# Drop the databases that earlier runs left behind.
psql "$admin" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'audex\_test\_%'" |
  while read -r db; do psql "$admin" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null; done

# The object-store emulators of the sink tests (installed once into a
# cache folder, then started in seconds). Emulators that were already
# running are reused and left running; those started here stop at exit.
if ! scripts/emulators.sh status; then
  trap 'scripts/emulators.sh stop' EXIT
fi
# (Assigned first, so that a failed start stops the script under set -e;
# eval "$(...)" would swallow its exit status.)
# A start that fails (a server that dies on a busy machine, a port taken
# meanwhile) is tried again with fresh ports.
for attempt in 1 2 3; do
  if emulators_env=$(scripts/emulators.sh start); then
    break
  fi
  [ "$attempt" = 3 ] && exit 1
  echo "test.sh: emulators did not start (attempt $attempt); trying again" >&2
  sleep 2
done
eval "$emulators_env"

# Chromium for the browser test of River's UI (installed once with apt).
AUDEX_TEST_CHROMIUM=$(scripts/chromium.sh)
export AUDEX_TEST_CHROMIUM

# DuckDB, the independent reader of export and stream parts (npm, once).
AUDEX_TEST_DUCKDB=$(scripts/duckdb.sh install)
export AUDEX_TEST_DUCKDB

go test -count=1 "$@" ./...
