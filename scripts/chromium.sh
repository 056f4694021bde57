#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium for the browser test of
# River's UI, installing Debian's chromium package with apt when it is
# missing.
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

for candidate in chromium chromium-browser; do
  if path=$(command -v "$candidate"); then
    echo "$path"
    exit 0
  fi
done
echo "chromium.sh: installing chromium with apt" >&2
sudo_if_needed apt-get update -qq >&2
sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
command -v chromium
