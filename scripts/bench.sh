#!/usr/bin/env bash
# The measured limits of one gateway (issue 8), as docs/PERFORMANCE.md
# records them. Prints the machine, then:
#   1. micro-benchmarks: buffer append, rules, uplink encode and throughput,
#      the end-to-end pipeline (go test -bench)
#   2. capacity: the built binary polling 1k, 10k and 50k tags once a second
#      from in-process Modbus devices through rules, buffer and the embedded
#      broker: delivered samples/s, CPU s per million samples, peak RSS,
#      heap in use, time to first publish (internal/e2e TestCapacity)
#   3. binary size per architecture (scripts/build.sh)
#
#   scripts/bench.sh                         # everything, about 5 minutes
#   TAGS=1000,10000 SECONDS_EACH=10 scripts/bench.sh
#   PROFILE=1 scripts/bench.sh               # also CPU and heap profiles of the
#                                            # end-to-end benchmark, top 15 each
# Numbers are only comparable on an idle machine: the load average is printed
# with every capacity line.
set -euo pipefail
cd "$(dirname "$0")/.."
tags=${TAGS:-1000,10000,50000}
seconds=${SECONDS_EACH:-20}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== machine"
echo "date:   $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cpu:    $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "memory: $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
echo "go:     $(go version | cut -d' ' -f3-)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "== micro-benchmarks"
go test -run '^$' -bench 'Append' -benchtime 2s ./buffer | grep -E '^Benchmark'
go test -run '^$' -bench 'Process1000' ./rules | grep -E '^Benchmark'
go test -run '^$' -bench 'Evaluate10k' ./rules/interlock | grep -E '^Benchmark'
go test -run '^$' -bench 'EncodeData100|Throughput$' ./uplink | grep -E '^Benchmark'
if [ "${PROFILE:-}" = 1 ]; then
  go test -run '^$' -bench EndToEnd -benchtime 500000x -count 1 \
    -cpuprofile "$out/cpu.out" -memprofile "$out/mem.out" -o "$out/gateway.test" ./internal/gateway | grep -E '^Benchmark'
  echo "-- where the CPU goes (end to end, cumulative)"
  go tool pprof -top -cum -nodecount 25 "$out/gateway.test" "$out/cpu.out" 2>/dev/null | tail -n 25
  echo "-- what allocates (end to end)"
  go tool pprof -sample_index=alloc_space -top -nodecount 15 "$out/gateway.test" "$out/mem.out" 2>/dev/null | tail -n 15
else
  go test -run '^$' -bench EndToEnd -benchtime 500000x -count 3 ./internal/gateway | grep -E '^Benchmark'
fi

echo
echo "== capacity: tags polled once a second, end to end"
HAZGATE_CAPACITY=$tags HAZGATE_CAPACITY_SECONDS=$seconds \
  go test -count=1 -run TestCapacity -v -timeout 20m ./internal/e2e | grep -E 'CAPACITY|FAIL|panic' || true

echo
echo "== binary size"
OUT="$out/dist" scripts/build.sh | tail -n +2
