#!/usr/bin/env bash
# Builds and tests the C# client SDK (sdk/csharp) under Debian's Mono.
#
#   scripts/csharp.sh            install Mono and NUnit if missing, build, test
#   scripts/csharp.sh install    only the install step
#
# The install is idempotent: it runs apt-get only when mcs, mono or
# nunit-console, or NUnit's framework assembly, is missing (CI's clean
# machine), and needs root there. No NuGet: the compilers, the BCL and
# NUnit 2.6 all come from Debian's packages. scripts/test.sh calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(mono-devel nunit-console libnunit-cil-dev)
nunit_dll=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll

install() {
  if command -v mcs >/dev/null && command -v mono >/dev/null &&
     command -v nunit-console >/dev/null && [ -f "$nunit_dll" ]; then
    return
  fi
  echo "== csharp: installing ${packages[*]} (apt)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

install
[ "${1:-}" = install ] && exit 0
exec sdk/csharp/build.sh
