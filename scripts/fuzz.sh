#!/usr/bin/env bash
# Run every fuzz target of the project for a bounded time each.
#   scripts/fuzz.sh            # 10 s each (what CI runs)
#   FUZZTIME=10m scripts/fuzz.sh   # a longer local run
# A crasher that go test -fuzz finds is written to the package's
# testdata/fuzz/<Target>/ folder: commit it, and it runs as a regression test
# with every plain `go test` from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}

# Find the targets instead of listing them, so a new one is never forgotten.
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "fuzz $pkg $target for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1 || {
      cat /tmp/fuzz.$$.log; rm -f /tmp/fuzz.$$.log; exit 1; }
    tail -n 1 /tmp/fuzz.$$.log
  done
done
rm -f /tmp/fuzz.$$.log
