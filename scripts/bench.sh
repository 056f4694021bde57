#!/usr/bin/env bash
# `make bench`: the figures of BENCHMARKS.md. Makes sure PostgreSQL is
# reachable (as `make test` does, but with the server's own durability
# settings), creates a fresh database audex_bench on it (dropping the one
# a previous run left), and runs cmd/bench there: it migrates, loads
# synthetic events and prints the results as markdown on stdout (progress
# on stderr). Settings are BENCH_* variables (see BENCHMARKS.md);
# AUDEX_BENCH_DATABASE_URL names the server's maintenance database when it
# is not postgres://postgres@127.0.0.1:5432/postgres.
#
# The export figures to S3 need MinIO: unless BENCH_S3=0, the emulators of
# scripts/emulators.sh are started (installed on first use) when they are
# not running, and stopped at the end only if this script started them.
#
# `scripts/bench.sh load` (`make load`) runs the load tests of
# RELIABILITY.md instead, each in a fresh database audex_bench_load,
# without the emulators (their exports go to a local folder): the ingest
# load, then the walls test of a hostile tenant (`LOAD_SCENARIOS`, default
# "ingest hostile", picks them); settings are LOAD_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case $mode in
"") db=audex_bench ;;
load)
  db=audex_bench_load
  BENCH_S3=0
  ;;
*)
  echo "usage: $0 [load]" >&2
  exit 2
  ;;
esac

say() { echo "bench.sh: $*" >&2; }

admin=$(scripts/postgres.sh "${AUDEX_BENCH_DATABASE_URL:-}")

# The same server and options as admin, database audex_bench.
base=${admin%%\?*}
query=${admin#"$base"}
export DATABASE_URL=${base%/*}/$db$query

recreate() {
  say "recreating the database $db"
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
}

if [ "$mode" = load ]; then
  unset AUDEX_TEST_S3_ENDPOINT
  for scenario in ${LOAD_SCENARIOS:-ingest hostile}; do
    case $scenario in
    ingest) arg=load ;;
    hostile) arg=hostile ;;
    *)
      echo "LOAD_SCENARIOS: unknown scenario $scenario (ingest, hostile)" >&2
      exit 2
      ;;
    esac
    recreate
    go run ./cmd/bench "$arg"
  done
  exit 0
fi
recreate

# The console phase opens the console in headless Chromium.
case ",${BENCH_PHASES:-console}," in
*,console,*) BENCH_CHROMIUM=$(scripts/chromium.sh) && export BENCH_CHROMIUM ;;
esac

if [ "${BENCH_S3:-1}" != 0 ]; then
  if scripts/emulators.sh status; then
    say "reusing the running emulators"
  else
    say "starting the emulators (MinIO for the S3 exports)"
    trap 'scripts/emulators.sh stop' EXIT
  fi
  eval "$(scripts/emulators.sh start)"
else
  unset AUDEX_TEST_S3_ENDPOINT
fi

go run ./cmd/bench ${mode:+"$mode"}
