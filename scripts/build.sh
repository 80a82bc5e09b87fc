#!/usr/bin/env bash
# Build stripped, static hazgate binaries for the boxes we ship to:
#   dist/hazgate-linux-arm64, dist/hazgate-linux-armv7, dist/hazgate-linux-amd64
# with the version stamped in (`hazgate version`).
#
#   scripts/build.sh                 # version from git describe
#   VERSION=v1.2.0 scripts/build.sh  # explicit version
#   OUT=/tmp/x scripts/build.sh      # another output folder
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
out=${OUT:-dist}
mkdir -p "$out"

build() { # name goos goarch [goarm]
  local name=$1 goos=$2 goarch=$3 goarm=${4:-}
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
    go build -trimpath -ldflags="-s -w -X hazgate/internal/version.Version=$version" \
    -o "$out/hazgate-$name" ./cmd/hazgate
  printf '%-22s %s bytes\n' "hazgate-$name" "$(stat -c %s "$out/hazgate-$name")"
}

echo "hazgate $version -> $out/"
build linux-arm64 linux arm64
build linux-armv7 linux arm 7
build linux-amd64 linux amd64
