#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (scripts/test-browser.sh),
# if it is missing: the apt package `chromium`. No browser is ever
# downloaded from anywhere else (Playwright's own download is not used: the
# tests use playwright-core with executablePath). Idempotent. Prints the
# browser's path on stdout. Set FASTWAY_CHROMIUM to a Chromium binary to use
# another one.
set -euo pipefail
if [ -n "${FASTWAY_CHROMIUM:-}" ]; then
  echo "$FASTWAY_CHROMIUM"
  exit 0
fi
for b in /usr/bin/chromium /usr/bin/chromium-browser; do
  if [ -x "$b" ]; then echo "$b"; exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: no Chromium and no apt-get: install Chromium or set FASTWAY_CHROMIUM" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: installing chromium (apt)" >&2
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
echo /usr/bin/chromium
