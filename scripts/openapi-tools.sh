#!/usr/bin/env bash
# The OpenAPI linter that TestOpenAPILint (internal/api) runs against
# internal/api/openapi.json: Redocly CLI, from the npm registry.
#
#   scripts/openapi-tools.sh redocly   install (once), print the binary's path
#   scripts/openapi-tools.sh lint      lint openapi.json (no errors allowed)
#
# `redocly` prints only the path on stdout; install output goes to stderr.
# Redocly CLI is installed at a pinned version into
# ${AUDEX_CACHE:-$HOME/.cache/audex}/redocly (as scripts/emulators.sh
# installs Azurite), which survives between runs: the first install takes a
# few seconds, later calls none. Its telemetry and update notices are off.
# (The Go client check needs no install: TestOpenAPIGoClient runs a pinned
# oapi-codegen with `go run`, which Go caches.)
set -euo pipefail
cd "$(dirname "$0")/.."

REDOCLY_VERSION=2.77.0

cache=${AUDEX_CACHE:-$HOME/.cache/audex}
redocly_bin=$cache/redocly/node_modules/.bin/redocly
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

say() { echo "openapi-tools.sh: $*" >&2; }
# shellcheck source=scripts/npm-pinned.sh
. scripts/npm-pinned.sh

install_redocly() {
  npm_pinned "$cache/redocly" @redocly/cli "$REDOCLY_VERSION"
}

case ${1:-} in
redocly)
  install_redocly
  echo "$redocly_bin"
  ;;
lint)
  install_redocly
  "$redocly_bin" lint --config internal/api/redocly.yaml internal/api/openapi.json
  ;;
*)
  echo "usage: $0 redocly|lint" >&2
  exit 2
  ;;
esac
