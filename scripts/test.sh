#!/usr/bin/env bash
# The project's test command: formatting, vet, staticcheck (pinned in go.mod
# as a tool), every test under the race detector, then the C# SDK's build
# and NUnit tests under Mono (scripts/csharp.sh installs Mono and NUnit from
# Debian's packages when they are missing). deploy/ is a module of its own
# (its tests need the Kubernetes API types), tested after the root one.
# scripts/test-sdk.sh builds and tests the TypeScript SDK, and
# scripts/test-browser.sh runs it and the chat page in headless Chromium
# (Debian's package, installed with apt-get when missing).
# .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== etcd (for the fleet tests)"
./scripts/install-etcd.sh
export FASTWAY_REQUIRE_ETCD=1
echo "== go test -race"
# Some gateway tests open a few thousand loopback sockets (slowloris,
# 10,000 virtual connections); they also raise the soft limit themselves.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
go test -race -count=1 -timeout 8m ./...
echo "== full size, without -race: 100 clients x 10 virtual connections x 1000 messages each way, TCP and WebSocket"
# Under -race the load tests shrink (gateway/hardening_test.go, scaled);
# these two run at the size their issue names.
go test -count=1 -timeout 3m -run '^(TestEndToEndMany|TestWSEndToEndMany)$' -v ./gateway | grep -E '^(=== RUN|--- |ok|FAIL|PASS)|_test.go:[0-9]+:'
echo "== deploy (nested module: the Kubernetes manifests and the compose recipe)"
(cd deploy && go vet ./... && go tool staticcheck ./... && go test -race -count=1 ./...)
./scripts/test-sdk.sh
echo "== browser (tests/browser: the SDK and the chat page in headless Chromium)"
./scripts/test-browser.sh
echo "== csharp (sdk/csharp)"
./scripts/csharp.sh
