#!/usr/bin/env bash
# Runs on a GPU machine (made by scripts/gpu-bundle.sh): CPU/CUDA parity with
# a GPU required (the tests a machine without one lists as ignored), the
# NVRTC compile check, and the frame-kernel benchmark.
# Needs the NVIDIA driver and an NVRTC 12 or 13 library (a CUDA toolkit, or
# the nvidia-cuda-nvrtc Python package), no Rust.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
# NVRTC: the toolkit's, else the Python wheel's.
nvrtc=$(ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null | head -1)
if ! ls "${nvrtc:-/nonexistent}"/libnvrtc.so* >/dev/null 2>&1; then
  lib=$(find / -xdev \( -name 'libnvrtc.so.13' -o -name 'libnvrtc.so.12' \) 2>/dev/null | head -1)
  nvrtc=${lib:+$(dirname "$lib")}
fi
echo "NVRTC from: ${nvrtc:-not found}"
export LD_LIBRARY_PATH="${nvrtc:+$nvrtc:}${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
echo "== parity and NVRTC (GPU required)"
MONTEUR_REQUIRE_GPU=1 "$here/cuda" --include-ignored --nocapture --test-threads=1 2>&1 | tee "$out/parity.log"
parity=${PIPESTATUS[0]}
echo "== frame kernel benchmark"
"$here/frame_stats" --bench 2>&1 | tee "$out/frame_stats.md"
bench=${PIPESTATUS[0]}
echo "parity exit $parity, bench exit $bench"
[ "$parity" = 0 ] && [ "$bench" = 0 ]
