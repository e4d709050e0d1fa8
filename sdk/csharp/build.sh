#!/usr/bin/env bash
# Builds the C# SDK with Mono's mcs and runs its NUnit tests against the real
# gateway (scripts/csharp.sh installs Mono and NUnit first; scripts/test.sh
# calls that).
#
#   sdk/csharp/build.sh                  build and run every test
#   sdk/csharp/build.sh -run=Fastway.Tests.SnetTests   one fixture (nunit-console -run)
#
# The SDK is compiled as C# 7.2 (mcs's highest; Unity's 7.3 accepts all of
# it) with every warning an error, then checked by tools/ApiCheck against
# the .NET Standard 2.0 facade: no type outside the standard, no assembly
# outside the base class library. FASTWAY_CS_OUT keeps the build output.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
out=${FASTWAY_CS_OUT:-}
if [ -z "$out" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

nunit=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll
cecil=/usr/lib/mono/gac/Mono.Cecil/0.11.0.0__0738eb9f132ed756/Mono.Cecil.dll
netstandard=/usr/lib/mono/4.7.1-api/Facades/netstandard.dll
mcs=(mcs -langversion:7.2 -warnaserror+ -warn:4 -nostdlib- -debug+)

echo "== csharp: build (mcs $(mcs --version | awk '{print $NF}'), C# 7.2, warnings as errors)"
"${mcs[@]}" -target:library -out:"$out/Fastway.dll" -doc:"$out/Fastway.xml" \
  -r:System.dll -r:System.Core.dll -recurse:'Fastway/*.cs'
"${mcs[@]}" -target:exe -out:"$out/ApiCheck.exe" -r:"$cecil" -r:System.Core.dll tools/ApiCheck.cs
cp "$cecil" "$out/"
mono "$out/ApiCheck.exe" "$out/Fastway.dll" "$netstandard"
"${mcs[@]}" -target:library -out:"$out/Fastway.Tests.dll" -r:"$out/Fastway.dll" -r:"$nunit" \
  -r:System.dll -r:System.Core.dll -r:System.Numerics.dll tests/*.cs examples/*.cs

echo "== csharp: go build fastway, testserver"
(cd "$root" && go build -o "$out/fastway" ./cmd/fastway && go build -o "$out/testserver" ./sdk/csharp/testserver)

echo "== csharp: nunit-console"
status=0
FASTWAY_ROOT=$root FASTWAY_BIN=$out/fastway FASTWAY_TESTSERVER=$out/testserver \
  timeout 600 nunit-console -nologo -noshadow -labels -timeout=120000 -xml="$out/TestResult.xml" \
  "$out/Fastway.Tests.dll" "$@" || status=$?
# The plain closing line: counts from NUnit's result file.
if [ -f "$out/TestResult.xml" ]; then
  attr() { grep -o "<test-results [^>]*" "$out/TestResult.xml" | grep -o " $1=\"[0-9]*\"" | grep -o '[0-9]*'; }
  total=$(attr total) failures=$(attr failures) errors=$(attr errors)
  skipped=$(( $(attr not-run) ))
  echo "csharp: $(( total - failures - errors )) passed, $(( failures + errors )) failed, $skipped skipped"
fi
exit "$status"
