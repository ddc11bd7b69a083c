#!/usr/bin/env bash
# Makes a fresh, minimal Debian 12 root file system for an architecture (amd64 or arm64) and
# prints the path of its cached tarball. arm64 roots are finished under QEMU (debootstrap
# --foreign, then the second stage in a chroot through binfmt_misc), as on a Pi's SD card.
# Used by the installer test (test/arm64/install-bundle.test.ts); needs root and Debian's mirror.
#
#   scripts/ci/debian-root.sh arm64   ->  $FLEETML_ARM64_CACHE/debian-bookworm-arm64.tgz
set -euo pipefail
ARCH=${1:?usage: debian-root.sh amd64|arm64}
CACHE=${FLEETML_ARM64_CACHE:-$HOME/.cache/fleetml-arm64}
OUT="$CACHE/debian-bookworm-$ARCH.tgz"
MIRROR=${FLEETML_DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -f "$OUT" ]; then echo "$OUT"; exit 0; fi
command -v debootstrap >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends debootstrap >/dev/null
mkdir -p "$CACHE"
root=$(mktemp -d "$CACHE/root-$ARCH.XXXX")
chmod 0755 "$root" # the root of a system: every user must traverse it
trap 'rm -rf "$root"' EXIT
# minbase has dpkg, coreutils, util-linux (runuser), passwd (useradd), tar and gzip.
debootstrap --variant=minbase --foreign --arch="$ARCH" bookworm "$root" "$MIRROR" >&2
chroot "$root" /debootstrap/debootstrap --second-stage >&2
rm -rf "$root/var/cache/apt/archives/"*.deb
tar -czf "$OUT.tmp" -C "$root" . && mv "$OUT.tmp" "$OUT"
echo "$OUT"
