#!/usr/bin/env bash
# Builds the local stand-in for python:3.11-slim where no registry can be reached:
# Debian bookworm (python3 3.11) from debootstrap, imported into podman as one layer.
# An image of that name that already exists is kept (CI reuses it between runs).
#   deploy/base-image.sh [NAME]       default localhost/tweetdomains-base:bookworm
set -euo pipefail
name="${1:-localhost/tweetdomains-base:bookworm}"
podman="${PODMAN:-podman --runtime runc}"
if $podman image exists "$name"; then
  echo "base image $name: present, kept"
  exit 0
fi
# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
apt_mirror() {
  { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ {print $2}' || true
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
      | awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; break}}' || true
  } | grep -v security | head -n1 || true
}
mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs="$(mktemp -d /tmp/tweetdomains-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
start=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
# Slim it as python:3.11-slim is: no apt lists, no docs, no man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
tar -C "$rootfs" -c . | $podman import --quiet --change 'CMD ["python3"]' - "$name" >/dev/null
rm -f "$rootfs.log"
echo "base image $name: built in $((SECONDS - start)) s from $mirror"
