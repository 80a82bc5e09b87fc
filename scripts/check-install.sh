#!/usr/bin/env bash
# Build every target with scripts/build.sh, install into a staging root with
# scripts/install.sh, and check the result: the binary reports its version,
# the shipped example config validates, and the systemd unit has no
# unknown or invalid settings (systemd-analyze, where installed).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

OUT="$tmp/dist" VERSION=check-install scripts/build.sh
DESTDIR="$tmp/root" scripts/install.sh "$tmp/dist/hazgate-linux-amd64" >/dev/null

bin="$tmp/root/usr/local/bin/hazgate"
got=$("$bin" version)
[ "$got" = "hazgate check-install" ] || { echo "version: got '$got'"; exit 1; }
"$bin" validate "$tmp/root/etc/hazgate/hazgate.yaml" >/dev/null

unit="$tmp/root/etc/systemd/system/hazgate.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  # Only the unit's own syntax counts here: the staging root has no
  # /usr/local/bin/hazgate and no targets, which systemd also reports.
  problems=$(systemd-analyze verify "$unit" 2>&1 | grep -Ei 'unknown|invalid|failed to parse|ignoring' || true)
  if [ -n "$problems" ]; then
    echo "systemd unit problems:"; echo "$problems"; exit 1
  fi
fi
echo "install check: 3 targets built, staged install works, unit file clean"
