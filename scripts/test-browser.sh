#!/usr/bin/env bash
# The real-browser tests (tests/browser): Debian's Chromium, headless, driven
# by playwright-core, against the real gateway binary.
#   - the TypeScript SDK's bundle in a page, over ws:// and wss://, to the Go
#     echo backend (tests/browser/test/sdk.test.mjs)
#   - the chat demo: examples/chat/run.sh and two pages chatting
#     (tests/browser/test/chat.test.mjs), which saves docs/images/chat.png
#   - the static server the pages are served by (static.test.mjs)
#
#   scripts/test-browser.sh
#
# Installs what is missing: Chromium and openssl from Debian's packages
# (scripts/install-chromium.sh; no browser download), playwright-core with
# npm ci (tests/browser/package-lock.json), and builds the SDK
# (sdk/typescript: npm ci, npm run build) when its dist/ is missing or older
# than its sources. FASTWAY_BROWSER_VERBOSE=1 shows the processes' and pages'
# logs. scripts/test.sh calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=$(./scripts/install-chromium.sh)
if ! command -v openssl >/dev/null 2>&1; then
  echo "== browser: installing openssl (apt)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi
echo "== browser: $("$chromium" --version 2>/dev/null | head -1)"

dist=sdk/typescript/dist/index.js
if [ ! -f "$dist" ] || [ -n "$(find sdk/typescript/src sdk/typescript/package.json sdk/typescript/tsconfig.json -newer "$dist" -print -quit)" ]; then
  echo "== browser: building the SDK (sdk/typescript)"
  (cd sdk/typescript && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
fi
echo "== browser: npm ci (tests/browser)"
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/fastway" ./cmd/fastway
go build -o "$bin/echo" ./examples/echo

echo "== browser: tests"
cd tests/browser
FASTWAY_BROWSER_BIN=$bin FASTWAY_CHROMIUM=$chromium \
  node --test --test-concurrency=1 --test-timeout=150000 test/*.test.mjs
