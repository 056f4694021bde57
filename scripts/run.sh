#!/usr/bin/env bash
# `make run`: brings up everything audex needs on this machine and serves.
# Uses the PostgreSQL at DATABASE_URL when it answers; otherwise (and only
# when DATABASE_URL was not set) installs PostgreSQL if needed and starts a
# private cluster under .data/. Then migrates, makes sure a development key
# for tenant "dev" and an operator key (River's UI) exist, and runs the API
# and the worker in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "run.sh: $*" >&2; }

mkdir -p .data/bin
say "building"
go build -o .data/bin/ ./cmd/api ./cmd/worker ./cmd/audexctl

user_url=${DATABASE_URL:-}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/audex?sslmode=disable}
if ! .data/bin/api migrate >&2; then
  if [ -n "$user_url" ]; then
    say "DATABASE_URL does not answer; fix it or unset it to use a private PostgreSQL"
    exit 1
  fi
  admin=$(scripts/postgres.sh --private)
  export DATABASE_URL=${admin%/postgres?sslmode=disable}/audex?sslmode=disable
  .data/bin/api migrate >&2
fi

# key_in FILE NAME SCOPES: the key kept in FILE if it is still active, else
# a new one for tenant "dev", kept there.
key_in() {
  local key
  key=$(cat "$1" 2>/dev/null || true)
  if [ -z "$key" ] || ! .data/bin/api keys check "$key" 2>/dev/null; then
    key=$(.data/bin/api keys create --tenant dev --name "$2" --scopes "$3")
    (umask 077 && echo "$key" >"$1")
  fi
  echo "$key"
}
keyfile=.data/dev-key
key=$(key_in "$keyfile" dev audit:read,audit:write,audit:export,audit:admin)
operator_key=$(key_in .data/operator-key operator operator)

listen=${AUDEX_LISTEN:-127.0.0.1:8080}
export AUDEX_WORKER_METRICS_LISTEN=${AUDEX_WORKER_METRICS_LISTEN:-127.0.0.1:9091}
cat >&2 <<MSG

audex is starting on http://$listen (database: ${DATABASE_URL%%\?*})
Development key for tenant "dev" (also in $keyfile):

  export AUDEX_API_KEY=$key

Try:

  curl -s -X POST http://$listen/v1/audit/events \\
    -H "Authorization: Bearer \$AUDEX_API_KEY" -H 'Content-Type: application/json' \\
    -d '{"events":[{"action":"user.login","actor":{"id":"alice","type":"user"},"source_ip":"10.0.0.1"}]}'
  curl -s "http://$listen/v1/audit/events?limit=10" -H "Authorization: Bearer \$AUDEX_API_KEY"
  AUDEX_URL=http://$listen .data/bin/audexctl events list

River's UI: http://$listen/admin/river/ (any user name; password: the operator
key in .data/operator-key). Metrics: http://$listen/metrics (API) and
http://$AUDEX_WORKER_METRICS_LISTEN/metrics (worker).

MSG

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop INT TERM EXIT
.data/bin/api serve &
pids+=($!)
.data/bin/worker &
pids+=($!)
# Stop everything as soon as either process exits.
wait -n
