#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable and prints the URL of its
# maintenance database ("postgres") on stdout; progress goes to stderr.
#
#   scripts/postgres.sh URL        use the server of URL if it answers
#   scripts/postgres.sh --private  always use the private cluster
#   scripts/postgres.sh --bindir   print the server programs' folder
#                                  (initdb, pg_ctl), installing them if missing
#
# When the server does not answer, it installs PostgreSQL with apt if it is
# missing and starts a private cluster under .data/pg on 127.0.0.1
# (AUDEX_PG_PORT, default 5433). PostgreSQL refuses to run as root, so as
# root the cluster belongs to the postgres user. With AUDEX_PG_FAST=1 the
# cluster trades durability for speed (tests only).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "postgres.sh: $*" >&2; }
url_of() { echo "postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"; }

answers() {
  command -v psql >/dev/null 2>&1 && psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

want=${1:-$(url_of 5432)}
if [ "$want" != "--private" ] && [ "$want" != "--bindir" ] && answers "$want"; then
  echo "$want"
  exit 0
fi

port=${AUDEX_PG_PORT:-5433}
private_url=$(url_of "$port")
if [ "$want" != "--bindir" ] && answers "$private_url"; then
  echo "$private_url"
  exit 0
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  say "installing PostgreSQL with apt"
  sudo_if_needed apt-get update -qq >&2
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  # The package may have started its own cluster on 5432.
  if [ "$want" != "--private" ] && [ "$want" != "--bindir" ] && answers "$want"; then
    echo "$want"
    exit 0
  fi
fi
if [ "$want" = "--bindir" ]; then
  echo "$bindir"
  exit 0
fi

dir=$(pwd)/.data/pg
mkdir -p "$(dirname "$dir")"
as_owner=()
if [ "$(id -u)" = 0 ]; then
  as_owner=(runuser -u postgres --)
  # The postgres user must be able to reach the data folder.
  if ! runuser -u postgres -- test -x "$(dirname "$dir")"; then
    dir=/var/tmp/audex-pg-$(pwd | sha256sum | cut -c1-12)
    say "the checkout is not readable by the postgres user; using $dir"
  fi
fi
if [ ! -f "$dir/PG_VERSION" ]; then
  say "creating a private cluster in $dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  "${as_owner[@]}" "$bindir/initdb" -D "$dir" -U postgres -A trust -E UTF8 --no-sync >&2
fi
opts="-c listen_addresses=127.0.0.1 -p $port -k $dir"
if [ "${AUDEX_PG_FAST:-}" = 1 ]; then
  opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
fi
say "starting the private cluster on 127.0.0.1:$port"
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -o "$opts" start >&2
echo "$private_url"
