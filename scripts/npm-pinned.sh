# Sourced by the scripts that install an npm package at a pinned version
# into the cache (emulators.sh: Azurite; openapi-tools.sh: Redocly CLI;
# duckdb.sh: @duckdb/node-api). Needs say() from the sourcing script.

# npm_pinned PREFIX PACKAGE VERSION: install PACKAGE@VERSION under PREFIX
# unless that version is there already; npm's output goes to stderr.
npm_pinned() {
  local prefix=$1 package=$2 version=$3
  local manifest=$prefix/node_modules/$package/package.json
  if [ -f "$manifest" ] && grep -q "\"version\": *\"$version\"" "$manifest"; then
    return 0
  fi
  command -v npm >/dev/null || {
    say "npm is not installed (apt-get install npm)"
    return 1
  }
  say "installing $package@$version into $prefix (cached for later runs)"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --no-progress \
    --loglevel=error "$package@$version" </dev/null >&2
}
