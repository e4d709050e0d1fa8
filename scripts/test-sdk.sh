#!/usr/bin/env bash
# Builds and tests the TypeScript SDK (sdk/typescript): npm ci from the
# lockfile (dev dependencies only: typescript, @types/node), tsc in strict
# mode, the unit tests (node --test), then the integration tests against the
# real gateway and the Go echo backend (examples/echo), both built here.
# scripts/test.sh calls this.
#
#   scripts/test-sdk.sh           all of it
#   scripts/test-sdk.sh unit      npm ci, build, unit tests only
#
# Node.js 20 or later is needed (the machine has it; where it is missing
# this installs Debian's nodejs and npm, and says so if they are too old).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# node and npm to build and test; openssl makes the TLS tests' certificate.
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== sdk/typescript: installing ${missing[*]} (apt)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "sdk/typescript needs Node.js 20 or later, found $(node --version)" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd sdk/typescript
node_test=(node --test --unhandled-rejections=strict --test-timeout=120000)

echo "== sdk/typescript: npm ci (node $(node --version), npm $(npm --version))"
npm ci --no-audit --no-fund --loglevel=error
echo "== sdk/typescript: tsc (strict)"
rm -rf dist build
npx tsc -p tsconfig.json
npx tsc -p tsconfig.browser.json # the browser entry against DOM types, without Node's
npx tsc -p tsconfig.test.json
echo "== sdk/typescript: unit tests"
"${node_test[@]}" build/test/unit/
[ "${1:-}" = unit ] && exit 0

echo "== sdk/typescript: go build fastway, examples/echo"
(cd "$root" && go build -o "$out/fastway" ./cmd/fastway && go build -o "$out/echo" ./examples/echo)
echo "== sdk/typescript: integration tests (real gateway)"
FASTWAY_BIN=$out/fastway FASTWAY_ECHO=$out/echo "${node_test[@]}" --test-concurrency=1 build/test/integration/
