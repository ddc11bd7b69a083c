#!/usr/bin/env bash
# Installs the fleetml agent on a Debian-family device (Debian, Raspberry Pi OS, Ubuntu/JetPack)
# as a systemd service running as its own user, with data under /var/lib/fleetml, and enrolls
# it with the cloud using a one-time token.
#
#   sudo scripts/install-agent.sh --cloud mqtt://cloud.example:1883 --token <enroll-token>
#   sudo scripts/install-agent.sh --bundle agent.tgz --cloud ... --token ...   (offline)
#
# With --bundle (from `fleetml agent bundle --arch arm64|x64 -o agent.tgz`) nothing is downloaded
# or compiled: the bundle holds the agent, its dependencies and native addons for this
# architecture, and a pinned Node if it was built with --node. A 32-bit ARM OS is refused.
#
# Options:
#   --cloud <url>        MQTT URL of the fleetml cloud (required)
#   --token <token>      one-time enrollment token (required unless already enrolled)
#   --ca <file>          fleet CA certificate (PEM) to pin for mqtts:// (from `fleetml tokens enroll`)
#   --fleet-key <key>    fleet signing key or its fingerprint (not needed with a `fleetml tokens enroll` token)
#   --bundle <file>      install offline from a device bundle (fleetml agent bundle)
#   --source <dir>       fleetml checkout to install from (default: the one holding this script)
#   --prefix <dir>       where the agent's code goes (default /opt/fleetml)
#   --data-dir <dir>     agent data: identity, state, model slots, outbox (default /var/lib/fleetml)
#   --user <name>        service user (default fleetml)
#   --ep <ep>            execution provider: auto|cpu|cuda|tensorrt (default auto)
#   --telemetry-interval <s>  seconds between telemetry samples (default 10)
#   --no-start           install and enroll, but do not enable/start the service
#   --dry-run            print what would be done, change nothing
#   -h, --help           this text
#
# Re-running is safe: code and unit are replaced, config is rewritten, identity is kept.
set -euo pipefail

CLOUD="" TOKEN="" CA="" FLEET_KEY="" PREFIX=/opt/fleetml DATA_DIR=/var/lib/fleetml SERVICE_USER=fleetml EP=auto
INTERVAL=10 START=1 DRY=0 NODE_MAJOR=20 BUNDLE=""
SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONF_DIR=/etc/fleetml
UNIT=/etc/systemd/system/fleetml-agent.service

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "install-agent: $*" >&2; exit 1; }
run() { if [ "$DRY" = 1 ]; then echo "+ $*"; else "$@"; fi; }
bundle_field() { sed -n "s/^ *\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p"; }

# Checks that a device bundle was built for this machine, before anything changes; sets NODE_BIN
# to its pinned Node, or checks that the system's Node has the ABI its native addons were built for.
check_bundle() {
  local json arch abi version
  json=$(tar -xzOf "$BUNDLE" ./bundle.json 2>/dev/null) || die "$BUNDLE is not a fleetml device bundle (no bundle.json)"
  arch=$(bundle_field arch <<<"$json"); abi=$(bundle_field nodeAbi <<<"$json"); version=$(bundle_field nodeVersion <<<"$json")
  [ "$arch" = "$MACHINE" ] || die "$BUNDLE is for linux/$arch, this machine is $MACHINE: build it with fleetml agent bundle --arch $MACHINE"
  if [ "$(bundle_field pinnedNode <<<"$json")" = true ]; then
    NODE_BIN="$PREFIX/node/bin/node"
  elif ! command -v node >/dev/null 2>&1 || [ "$(node -p process.versions.modules)" != "$abi" ]; then
    die "the bundle has no pinned Node and needs a Node with ABI $abi (Node $version): install that Node, or build the bundle with fleetml agent bundle --node <dir> to ship one"
  fi
}

# Unpacks the bundle next to $PREFIX, then swaps it in (a re-install replaces the old code whole).
install_bundle() {
  local stage="$PREFIX.new"
  run rm -rf "$stage" "$PREFIX.old"
  run install -d -m 0755 "$stage"
  run tar -xzf "$BUNDLE" -C "$stage" --no-same-owner
  [ "$DRY" = 1 ] && return 0
  [ -d "$PREFIX" ] && mv "$PREFIX" "$PREFIX.old"
  mv "$stage" "$PREFIX" && rm -rf "$PREFIX.old"
  chmod 0755 "$PREFIX"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --cloud) CLOUD="$2"; shift 2 ;;
    --token) TOKEN="$2"; shift 2 ;;
    --ca) CA="$2"; shift 2 ;;
    --fleet-key) FLEET_KEY="$2"; shift 2 ;;
    --bundle) BUNDLE="$2"; shift 2 ;;
    --source) SOURCE="$2"; shift 2 ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --data-dir) DATA_DIR="$2"; shift 2 ;;
    --user) SERVICE_USER="$2"; shift 2 ;;
    --ep) EP="$2"; shift 2 ;;
    --telemetry-interval) INTERVAL="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ -n "$CLOUD" ] || die "--cloud <mqtt-url> is required"
case "$CLOUD" in mqtt://*|mqtts://*|ws://*|wss://*) ;; *) die "--cloud must be an mqtt://, mqtts://, ws:// or wss:// URL" ;; esac
case "$EP" in auto|cpu|cuda|tensorrt) ;; *) die "--ep must be auto, cpu, cuda or tensorrt" ;; esac
[ -z "$CA" ] || [ -f "$CA" ] || die "--ca $CA does not exist"
if [ -n "$BUNDLE" ]; then [ -f "$BUNDLE" ] || die "--bundle $BUNDLE does not exist"
else [ -f "$SOURCE/package.json" ] && [ -d "$SOURCE/agent" ] || die "--source $SOURCE is not a fleetml checkout"; fi

# 0. This machine's architecture, from the userland (dpkg) first: a 32-bit Raspberry Pi OS may run
# a 64-bit kernel, so uname alone would say aarch64. FLEETML_MACHINE overrides it (tests).
machine_arch() {
  local a="${FLEETML_MACHINE:-}"
  [ -n "$a" ] || { command -v dpkg >/dev/null 2>&1 && a=$(dpkg --print-architecture); } || true
  [ -n "$a" ] || a=$(uname -m)
  case "$a" in
    arm64|aarch64) echo arm64 ;;
    amd64|x86_64|x64) echo x64 ;;
    armhf|armel|armv6l|armv7l|arm) echo arm32 ;;
    *) echo "$a" ;;
  esac
}
MACHINE=$(machine_arch)
if [ "$MACHINE" = arm32 ]; then
  die "this is a 32-bit ARM operating system (armhf/armv7l): onnxruntime-node has no 32-bit ARM build, so the fleetml agent cannot run here. Install the 64-bit OS (Raspberry Pi OS (64-bit), arm64, from Raspberry Pi Imager; any Pi 3, 4, 5 or Zero 2 runs it), then install the arm64 bundle."
fi
NODE_BIN=$(command -v node || echo /usr/bin/node)
[ -z "$BUNDLE" ] || check_bundle
if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then die "run as root (sudo)"; fi

# 1. Node.js >= 20 (Debian 12 ships 18, so NodeSource's repository when the distro's is too old).
# A bundle brings its own Node or names the ABI it needs: nothing is downloaded.
node_ok() { command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge "$NODE_MAJOR" ]; }
if [ -n "$BUNDLE" ]; then
  :
elif ! node_ok; then
  echo "installing Node.js $NODE_MAJOR"
  run apt-get update -qq
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates curl gnupg
  if [ "$DRY" = 1 ]; then echo "+ curl -fsSL https://deb.nodesource.com/setup_${NODE_MAJOR}.x | bash -"
  else curl -fsSL "https://deb.nodesource.com/setup_${NODE_MAJOR}.x" | bash -; fi
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs
fi

# 2. Service user and directories: the agent can write only its data directory.
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  run useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
# vcgencmd (Raspberry Pi throttling bits) needs the video group.
if getent group video >/dev/null 2>&1; then run usermod -a -G video "$SERVICE_USER"; fi
run install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
run install -d -m 0755 "$PREFIX" "$CONF_DIR"

# 3. The agent: code, production dependencies, and the esbuild bundle the service runs
#    (plain node, no TypeScript loader: ~35 MB less RSS on the device).
if [ -n "$BUNDLE" ]; then
  install_bundle
else
#    Only the agent's dependencies (the cloud's are large), at the versions the lockfile pins.
AGENT_DEPS='["@datadog/sketches-js","better-sqlite3","commander","mqtt","onnxruntime-node","pino","pino-pretty","systeminformation","tsx","zod"]'
run cp -a "$SOURCE/package-lock.json" "$SOURCE/.npmrc" "$SOURCE/agent" "$SOURCE/shared" "$PREFIX/"
run node -e '
  const fs = require("fs");
  const [src, dst, keep] = process.argv.slice(1);
  const pkg = JSON.parse(fs.readFileSync(src, "utf8"));
  const wanted = new Set(JSON.parse(keep));
  pkg.name = "fleetml-agent";
  pkg.dependencies = Object.fromEntries(Object.entries(pkg.dependencies).filter(([n]) => wanted.has(n)));
  delete pkg.devDependencies; delete pkg.scripts; delete pkg.bin;
  fs.writeFileSync(dst, JSON.stringify(pkg, null, 2));
' "$SOURCE/package.json" "$PREFIX/package.json" "$AGENT_DEPS"
run bash -c "cd '$PREFIX' && npm install --omit=dev --no-audit --no-fund --loglevel=error"
run "$PREFIX/node_modules/.bin/esbuild" "$PREFIX/agent/cli/daemon.ts" --bundle --platform=node --format=esm \
  --target=node20 --packages=external "--outfile=$PREFIX/dist/fleetml-agent.mjs" --log-level=warning
fi

# 4. Config (validated by the agent on start; every key is documented in agent/config.ts).
# The CA is copied next to the config; the agent pins its own copy in the data dir on first start.
CA_LINE=""
if [ -n "$CA" ]; then
  run install -m 0644 "$CA" "$CONF_DIR/fleet-ca.pem"
  CA_LINE=$(printf ',\n  "caFile": "%s"' "$CONF_DIR/fleet-ca.pem")
fi
CONFIG_JSON=$(printf '{\n  "cloudUrl": "%s",\n  "dataDir": "%s",\n  "ep": "%s",\n  "telemetryIntervalS": %s%s\n}\n' \
  "$CLOUD" "$DATA_DIR" "$EP" "$INTERVAL" "$CA_LINE")
if [ "$DRY" = 1 ]; then echo "+ write $CONF_DIR/agent.json:"; echo "$CONFIG_JSON"
else
  printf '%s' "$CONFIG_JSON" > "$CONF_DIR/agent.json"
  chown "root:$SERVICE_USER" "$CONF_DIR/agent.json"; chmod 0640 "$CONF_DIR/agent.json"
fi

# A small young generation and one GC thread suit a mostly idle daemon (idle RSS: BENCHMARKS.md).
NODE_FLAGS="--max-semi-space-size=1 --max-old-space-size=48 --single-threaded-gc --v8-pool-size=1"
AGENT="$NODE_BIN $NODE_FLAGS $PREFIX/dist/fleetml-agent.mjs"

# 5. Enroll once, as the service user; the token is used here and never stored.
if [ -f "$DATA_DIR/identity.json" ]; then
  echo "already enrolled: keeping $DATA_DIR/identity.json"
else
  [ -n "$TOKEN" ] || die "--token <enroll-token> is required to enroll this device"
  run runuser -u "$SERVICE_USER" -- env FLEETML_ENROLL_TOKEN="$TOKEN" FLEETML_FLEET_KEY="$FLEET_KEY" $AGENT agent enroll --config "$CONF_DIR/agent.json" --json
fi

# 6. systemd unit: restart on failure, own user, writes only under the data directory.
UNIT_TEXT="[Unit]
Description=fleetml device agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$SERVICE_USER
Group=$SERVICE_USER
WorkingDirectory=$PREFIX
Environment=NODE_ENV=production
ExecStart=$AGENT agent start --config $CONF_DIR/agent.json
Restart=on-failure
RestartSec=5
KillSignal=SIGTERM
TimeoutStopSec=20
NoNewPrivileges=true
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
ReadWritePaths=$DATA_DIR

[Install]
WantedBy=multi-user.target
"
if [ "$DRY" = 1 ]; then echo "+ write $UNIT:"; echo "$UNIT_TEXT"; else printf '%s' "$UNIT_TEXT" > "$UNIT"; fi
if [ ! -d /run/systemd/system ] && [ "$DRY" = 0 ]; then
  # A chroot or a container without systemd: the unit is in place for the next boot.
  echo "systemd is not running here: $UNIT written; it starts with the next boot (systemctl enable fleetml-agent)"
  exit 0
fi
run systemctl daemon-reload
if [ "$START" = 1 ]; then
  run systemctl enable --now fleetml-agent.service
  echo "fleetml agent installed and started: journalctl -u fleetml-agent -f"
else
  echo "fleetml agent installed (not started): systemctl enable --now fleetml-agent"
fi
