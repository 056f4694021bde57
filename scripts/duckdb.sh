#!/usr/bin/env bash
# DuckDB, the independent reader of exported files in the tests: the npm
# package @duckdb/node-api (with its Linux bindings), pinned, installed
# once into ${AUDEX_CACHE:-$HOME/.cache/audex}/duckdb.
#
#   scripts/duckdb.sh install          install (once), print the reader's path
#   scripts/duckdb.sh read FILE FORMAT print FILE's row count and first rows
#                                      as JSON (FORMAT: jsonl, csv, parquet)
#
# Install output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

DUCKDB_VERSION=1.5.6-r.1

cache=${AUDEX_CACHE:-$HOME/.cache/audex}
dir=$cache/duckdb

say() { echo "duckdb.sh: $*" >&2; }
# shellcheck source=scripts/npm-pinned.sh
. scripts/npm-pinned.sh

install_duckdb() {
  npm_pinned "$dir" @duckdb/node-api "$DUCKDB_VERSION"
  # Beside its node_modules, so that its import resolves.
  cp scripts/duckdb-read.mjs "$dir/read.mjs"
}

case ${1:-} in
install)
  install_duckdb
  echo "$dir/read.mjs"
  ;;
read)
  [ $# -eq 3 ] || { echo "usage: $0 read FILE jsonl|csv|parquet" >&2; exit 2; }
  install_duckdb
  node "$dir/read.mjs" "$2" "$3"
  ;;
*)
  echo "usage: $0 install | read FILE FORMAT" >&2
  exit 2
  ;;
esac
