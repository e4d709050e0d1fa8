#!/usr/bin/env bash
# Installs an etcd server for the fleet tests (cmd/fastway TestFleet*), if
# none is on the PATH: Debian's etcd-server package. Idempotent; run by
# scripts/test.sh. Set FASTWAY_ETCD to an etcd binary to use another one.
set -euo pipefail
if [ -n "${FASTWAY_ETCD:-}" ] || command -v etcd >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-etcd: no etcd on the PATH and no apt-get: install etcd (3.4 or later) or set FASTWAY_ETCD" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
# The package may start a system etcd on the default ports; the tests start
# their own on ports of their own, so it is left alone.
command -v etcd >/dev/null
