#!/usr/bin/env bash
# Refreshes the console's chart library, uPlot (MIT), committed built in
# internal/console/web so that the console works with no internet: its
# minified script, its style sheet and its licence, copied from the npm
# package at the pinned version. Run it after changing UPLOT_VERSION and
# commit the three files.
set -euo pipefail
cd "$(dirname "$0")/.."

UPLOT_VERSION=1.6.32

say() { echo "vendor-uplot.sh: $*" >&2; }
# shellcheck source=scripts/npm-pinned.sh
. scripts/npm-pinned.sh

prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
npm_pinned "$prefix" uplot "$UPLOT_VERSION"
pkg=$prefix/node_modules/uplot
web=internal/console/web
cp "$pkg/dist/uPlot.iife.min.js" "$web/uplot.iife.min.js"
cp "$pkg/dist/uPlot.min.css" "$web/uplot.min.css"
cp "$pkg/LICENSE" "$web/uplot.LICENSE.txt"
say "uPlot $UPLOT_VERSION copied into $web"
