#!/usr/bin/env bash
# The object-store emulators that the sink tests run against: MinIO (S3),
# fake-gcs-server (GCS) and Azurite (Azure Blob), on 127.0.0.1.
#
#   eval "$(scripts/emulators.sh start)"   install (once), start, print exports
#   scripts/emulators.sh stop              stop what `start` started
#   scripts/emulators.sh status            exit 0 when all three are running
#
# `start` prints only `export VAR=value` lines on stdout (endpoints and the
# MinIO root credentials, all for throwaway test servers, and the paths of
# the binaries, for tests that run servers of their own); progress and
# install output go to stderr. When the three are already running it prints
# their exports again and starts nothing. Binaries are installed at pinned
# versions into ${AUDEX_CACHE:-$HOME/.cache/audex} (bin/ for the Go ones,
# node/ for Azurite), which survives between runs: the first MinIO build
# takes about 3 minutes and 1.5 GB of memory, later starts take seconds.
# PIDs, logs and data live under .data/emulators/; the data is wiped on
# every fresh start. The standard ports (9000, 4443, 10000) are used when
# free, other free ports otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
FAKE_GCS_MODULE=github.com/fsouza/fake-gcs-server
FAKE_GCS_VERSION=v1.56.1
AZURITE_VERSION=3.37.0

# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

root=$(pwd)
cache=${AUDEX_CACHE:-$HOME/.cache/audex}
state=$root/.data/emulators
names=(minio gcs azurite)

say() { echo "emulators.sh: $*" >&2; }
# shellcheck source=scripts/npm-pinned.sh
. scripts/npm-pinned.sh
die() {
  say "$*"
  exit 1
}

# alive PID NAME: the process PID is running and is the NAME server we
# started (not another process that got its PID later).
alive() {
  local pid=$1 name=$2 pattern
  case $name in
  minio) pattern=minio ;;
  gcs) pattern=fake-gcs-server ;;
  azurite) pattern=azurite ;;
  esac
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

pid_of() { cat "$state/$1.pid" 2>/dev/null || true; }

all_running() {
  local n
  [ -f "$state/env" ] || return 1
  for n in "${names[@]}"; do
    alive "$(pid_of "$n")" "$n" || return 1
  done
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Ports already picked in this run (pick_port runs in a subshell: the
# caller records what it got).
taken_ports=()
# pick_port PREFERRED: PREFERRED if free, else a free port in 20000-39999.
pick_port() {
  local p=$1 tries=0
  while :; do
    if port_free "$p" && [[ " ${taken_ports[*]-} " != *" $p "* ]]; then
      echo "$p"
      return 0
    fi
    tries=$((tries + 1))
    [ "$tries" -lt 200 ] || die "no free port found"
    p=$((20000 + RANDOM % 20000))
  done
}

# installed_go_version BINARY: the module version a Go binary was built from.
installed_go_version() {
  [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

install_go_tool() { # MODULE VERSION BINARY
  local module=$1 version=$2 bin=$cache/bin/$3
  if [ "$(installed_go_version "$bin" || true)" = "$version" ]; then
    return 0
  fi
  say "installing $module@$version into $cache/bin (cached for later runs)"
  local started=$SECONDS
  GOBIN=$cache/bin GOFLAGS=-buildvcs=false go install "$module@$version" >&2
  say "installed $3 in $((SECONDS - started)) s"
}

azurite_bin=$cache/node/node_modules/.bin/azurite-blob
install_azurite() {
  npm_pinned "$cache/node" azurite "$AZURITE_VERSION"
}

install_all() {
  mkdir -p "$cache/bin"
  # npm waits on the network while go install uses the CPU: overlap them.
  install_azurite &
  local npm_pid=$!
  local rc=0
  install_go_tool "$FAKE_GCS_MODULE" "$FAKE_GCS_VERSION" fake-gcs-server || rc=$?
  if [ "$rc" = 0 ]; then
    install_go_tool "$MINIO_MODULE" "$MINIO_VERSION" minio || rc=$?
  fi
  wait "$npm_pid" || rc=$?
  [ "$rc" = 0 ] || die "install failed (exit $rc)"
}

# wait_ready NAME URL: until URL answers with any HTTP status (2xx when
# STRICT=1), failing early if the server exits.
wait_ready() {
  local name=$1 url=$2 strict=${3:-0} code i
  for ((i = 0; i < 300; i++)); do
    if ! alive "$(pid_of "$name")" "$name"; then
      say "$name exited during start-up; its log ($state/$name.log):"
      tail -n 30 "$state/$name.log" >&2 || true
      return 1
    fi
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" || true)
    if [ "$strict" = 1 ]; then
      [[ $code == 2?? ]] && return 0
    else
      [ -n "$code" ] && [ "$code" != 000 ] && return 0
    fi
    sleep 0.1
  done
  say "$name did not become ready at $url in 30 s; its log ($state/$name.log):"
  tail -n 30 "$state/$name.log" >&2 || true
  return 1
}

stop_one() { # NAME
  local name=$1 pid i
  pid=$(pid_of "$name")
  rm -f "$state/$name.pid"
  alive "$pid" "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  # Azurite with its telemetry on lingers after TERM for 7+ s (under a
  # second with --disableTelemetry): give each a few seconds, then KILL.
  for ((i = 0; i < 30; i++)); do
    alive "$pid" "$name" || return 0
    sleep 0.1
  done
  say "$name (pid $pid) still running after TERM; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
  local n
  for n in "${names[@]}"; do
    stop_one "$n"
  done
  rm -f "$state/env"
}

# print_binaries: the exports of the three servers' binaries, for tests
# that run servers of their own (to stop and start them again). They depend
# on the cache only, so they are printed on every start, reusing or not,
# rather than saved with the running servers' exports.
print_binaries() {
  printf 'export %s=%q\n' \
    AUDEX_TEST_MINIO_BIN "$cache/bin/minio" \
    AUDEX_TEST_FAKE_GCS_BIN "$cache/bin/fake-gcs-server" \
    AUDEX_TEST_AZURITE_BIN "$azurite_bin"
}

cmd_start() {
  if all_running; then
    say "already running; reusing them"
    cat "$state/env"
    print_binaries
    return 0
  fi
  # Whatever is left of an earlier, partial start goes first.
  cmd_stop
  install_all

  rm -rf "$state"
  mkdir -p "$state/minio" "$state/gcs" "$state/azurite"

  local minio_port console_port gcs_port azurite_port minio_user minio_password
  minio_port=$(pick_port 9000)
  taken_ports+=("$minio_port")
  console_port=$(pick_port 9001)
  taken_ports+=("$console_port")
  gcs_port=$(pick_port 4443)
  taken_ports+=("$gcs_port")
  azurite_port=$(pick_port 10000)
  minio_user=audex
  minio_password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')

  # If anything below fails, stop what was started.
  trap 'rc=$?; [ "$rc" = 0 ] || cmd_stop' EXIT

  say "starting minio on 127.0.0.1:$minio_port"
  MINIO_ROOT_USER=$minio_user MINIO_ROOT_PASSWORD=$minio_password MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CI_CD=1 \
    "$cache/bin/minio" server "$state/minio" \
    --address "127.0.0.1:$minio_port" --console-address "127.0.0.1:$console_port" --quiet \
    </dev/null >"$state/minio.log" 2>&1 &
  echo $! >"$state/minio.pid"

  say "starting fake-gcs-server on 127.0.0.1:$gcs_port"
  "$cache/bin/fake-gcs-server" -scheme http -host 127.0.0.1 -port "$gcs_port" \
    -public-host "127.0.0.1:$gcs_port" -external-url "http://127.0.0.1:$gcs_port" \
    -backend filesystem -filesystem-root "$state/gcs" \
    </dev/null >"$state/gcs.log" 2>&1 &
  echo $! >"$state/gcs.pid"

  say "starting azurite-blob on 127.0.0.1:$azurite_port"
  "$azurite_bin" --blobHost 127.0.0.1 --blobPort "$azurite_port" \
    --location "$state/azurite" --skipApiVersionCheck --loose --silent --disableTelemetry \
    </dev/null >"$state/azurite.log" 2>&1 &
  echo $! >"$state/azurite.pid"

  wait_ready minio "http://127.0.0.1:$minio_port/minio/health/ready" 1
  wait_ready gcs "http://127.0.0.1:$gcs_port/storage/v1/b" 1
  wait_ready azurite "http://127.0.0.1:$azurite_port/$AZURITE_ACCOUNT?comp=list"
  trap - EXIT

  local azure_endpoint=http://127.0.0.1:$azurite_port/$AZURITE_ACCOUNT
  {
    printf 'export %s=%q\n' \
      AUDEX_TEST_S3_ENDPOINT "http://127.0.0.1:$minio_port" \
      AUDEX_TEST_S3_REGION us-east-1 \
      AUDEX_TEST_S3_ACCESS_KEY_ID "$minio_user" \
      AUDEX_TEST_S3_SECRET_ACCESS_KEY "$minio_password" \
      AUDEX_TEST_GCS_HOST "127.0.0.1:$gcs_port" \
      AUDEX_TEST_AZURE_BLOB_ENDPOINT "$azure_endpoint" \
      AUDEX_TEST_AZURE_CONNECTION_STRING "DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT;AccountKey=$AZURITE_KEY;BlobEndpoint=$azure_endpoint;"
  } >"$state/env"
  say "ready: minio :$minio_port, fake-gcs-server :$gcs_port, azurite :$azurite_port"
  cat "$state/env"
  print_binaries
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) all_running ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
