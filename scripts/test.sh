#!/usr/bin/env bash
# The project's test command (README.md shows it):
#   1. gofmt and go vet
#   2. the whole suite with the race detector (fast tests, whole-gateway
#      tests, and interop tests against installed peers)
#   3. every fuzz target for a bounded time (scripts/fuzz.sh; FUZZTIME=10s)
#   4. the three release builds, a staged install and the systemd unit
#   5. the unit tests of the arm64 and armv7 builds under qemu-user-static,
#      where it is installed (.ci/run installs it)
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -count=1 -timeout 15m ./...

scripts/fuzz.sh

scripts/check-install.sh

# Emulated, -short: what differs on ARM (word size, alignment, byte order in
# the codecs, the 32-bit mmap of the buffer on armv7) is covered by the unit
# tests of the packages below. The whole-gateway, browser and CLI packages
# test wiring and processes, not the architecture, and wall-clock timing
# and interop peers measure the emulator (HAZGATE_EMULATED=1 skips those:
# internal/interop), so the stage stays a few minutes.
emulated_pkgs=$(go list ./... | grep -v -E '/(internal/e2e|internal/demo|internal/web|cmd/hazgate)$')
if command -v qemu-aarch64-static >/dev/null 2>&1; then
  echo "unit tests, linux/arm64 under qemu:"
  HAZGATE_EMULATED=1 CGO_ENABLED=0 GOARCH=arm64 go test -count=1 -short -exec qemu-aarch64-static $emulated_pkgs | grep -v 'no test files'
  echo "unit tests, linux/arm GOARM=7 under qemu:"
  HAZGATE_EMULATED=1 CGO_ENABLED=0 GOARCH=arm GOARM=7 go test -count=1 -short -exec qemu-arm-static $emulated_pkgs | grep -v 'no test files'
elif [ "${HAZGATE_INTEROP:-}" = 1 ]; then
  echo "qemu-user-static is not installed; .ci/run must install it"; exit 1
fi
