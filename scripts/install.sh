#!/usr/bin/env bash
# Install hazgate on the box: binary, config directory, data directory
# owned by a dedicated user, and the hardened systemd unit.
#
#   sudo scripts/install.sh dist/hazgate-linux-arm64 [config.yaml]
#   DESTDIR=/tmp/root scripts/install.sh BINARY     # into a staging root (tests, packaging)
#
# It never overwrites an existing /etc/hazgate/hazgate.yaml and never starts
# the service: commission first (`hazgate validate`), then
# `systemctl enable --now hazgate`.
set -euo pipefail

bin=${1:?usage: install.sh BINARY [CONFIG]}
config=${2:-$(dirname "$0")/../configs/example.yaml}
root=${DESTDIR:-}
here=$(cd "$(dirname "$0")" && pwd)

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/share/doc/hazgate"
install -m 0755 "$bin" "$root/usr/local/bin/hazgate"
install -d -m 0750 "$root/etc/hazgate" "$root/var/lib/hazgate"
if [ ! -e "$root/etc/hazgate/hazgate.yaml" ]; then
  install -m 0640 "$config" "$root/etc/hazgate/hazgate.yaml"
  echo "installed $config as /etc/hazgate/hazgate.yaml: edit it, then run: hazgate validate /etc/hazgate/hazgate.yaml"
else
  echo "kept the existing /etc/hazgate/hazgate.yaml"
fi
install -m 0644 "$here/systemd/hazgate.service" "$root/etc/systemd/system/hazgate.service"
install -m 0644 "$here/../README.md" "$root/usr/share/doc/hazgate/README.md"

if [ -z "$root" ]; then
  # A real install: the dedicated user, ownership, and systemd's view.
  if ! id hazgate >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/hazgate --shell /usr/sbin/nologin --user-group hazgate
  fi
  chown -R hazgate:hazgate /var/lib/hazgate
  chown root:hazgate /etc/hazgate /etc/hazgate/hazgate.yaml
  if command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload || true
  fi
  echo "installed. Start with: systemctl enable --now hazgate"
else
  echo "installed into $root (no user created, no systemd reload)"
fi
