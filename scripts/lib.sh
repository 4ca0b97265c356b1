# Shared by the scripts in this folder: locations and small helpers.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Caches live outside the repository so a fresh clone (CI) reuses them.
CACHE="${MONTEUR_CACHE:-$HOME/.cache/monteur}"
TOOLS="${MONTEUR_TOOLS:-$HOME/.cache/monteur-tools}"
ASSETS="$CACHE/assets"
FIXTURES="${MONTEUR_FIXTURES:-$ROOT/../shared/fixtures}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"

GARAGE_VERSION=2.5.0
GARAGE_BIN="$TOOLS/garage-$GARAGE_VERSION/bin/garage"

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "root or sudo is needed to run: $*"
  fi
}

# True when something listens on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to $2 seconds for port $1.
wait_port() {
  local port=$1 secs=$2 i
  for ((i = 0; i < secs * 4; i++)); do
    port_open "$port" && return 0
    sleep 0.25
  done
  return 1
}

# pinned_venv DIR PIN...: a venv at DIR holding exactly these pinned packages
# (no dependency resolution: every package is named). Rebuilt when the pins change.
pinned_venv() {
  local dir=$1; shift
  local stamp
  stamp="$dir/.pins-$(printf '%s ' "$@" | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  say "installing pinned Python packages into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir" || die "python3 -m venv failed (is python3-venv installed?)"
  "$dir/bin/pip" install -q --no-deps "$@" || die "could not install: $*"
  touch "$stamp"
}
