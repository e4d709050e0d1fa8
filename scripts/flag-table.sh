#!/usr/bin/env bash
# Prints the flag tables of docs/operations.md from the binary's -h output,
# so the documented defaults are the real ones:
#   scripts/flag-table.sh            # runs go run ./cmd/fastway -h
#   scripts/flag-table.sh ./fastway  # or a built binary
# (cmd/fastway's TestDocsFlagTable fails when the doc and the binary differ.)
set -euo pipefail

if [[ $# -gt 0 ]]; then
	usage=$("$1" -h)
else
	cd "$(dirname "$0")/.."
	usage=$(go run ./cmd/fastway -h)
fi

awk '
/^[A-Z][A-Za-z ]*:$/ {
	printf "\n**%s**\n\n| Flag | Default | Meaning |\n|---|---|---|\n", substr($0, 1, length($0) - 1)
	next
}
/^  -/ {
	line = $0
	sub(/^  -/, "", line)
	eq = index(line, "=")
	name = substr(line, 1, eq - 1)
	rest = substr(line, eq + 1)
	def = rest
	sub(/ .*/, "", def)
	desc = rest
	sub(/^[^ ]* +/, "", desc)
	gsub(/\|/, "\\|", desc)
	printf "| `-%s` | `%s` | %s |\n", name, def, desc
}' <<<"$usage"
