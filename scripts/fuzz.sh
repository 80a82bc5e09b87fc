#!/usr/bin/env bash
# Run every fuzz target of the project for a bounded time each.
#   scripts/fuzz.sh            # 10 s each (what CI runs)
#   FUZZTIME=10m scripts/fuzz.sh   # a longer local run
# A crasher that go test -fuzz finds is written to the package's
# testdata/fuzz/<Target>/ folder: commit it, and it runs as a regression test
# with every plain `go test` from then on.
#
# Go before 1.27 can end a -fuzztime run with a bare "context deadline
# exceeded" failure when a worker is mid-call at the deadline (a race in
# its fuzz coordinator, golang/go#75804; CI hit it on FuzzParse with no
# input written). Such a run is tried once more; anything else (a written
# input, a panic, a failed check) fails at once, and so does a second bare
# deadline in a row.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# coordinator_race LOG: the run failed only by the deadline race.
coordinator_race() {
  grep -q 'context deadline exceeded' "$1" &&
    ! grep -q -E 'Failing input written|panic:|_test\.go:[0-9]+:' "$1"
}

# Find the targets instead of listing them, so a new one is never forgotten.
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=./$(dirname "${file#./}")
  for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    for attempt in 1 2; do
      echo "fuzz $pkg $target for $fuzztime"
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
        tail -n 1 "$log"
        break
      fi
      cat "$log"
      if [ "$attempt" = 1 ] && coordinator_race "$log"; then
        echo "fuzz $pkg $target: only the fuzz coordinator's deadline race (golang/go#75804), no input written: once more"
        continue
      fi
      exit 1
    done
  done
done
