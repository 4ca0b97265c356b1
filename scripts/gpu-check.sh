#!/usr/bin/env bash
# Runs on a GPU machine (made by scripts/gpu-bundle.sh): CPU/CUDA parity with
# a GPU required, the NVRTC compile check, and the frame-kernel benchmark.
# Needs the NVIDIA driver and a CUDA toolkit (for libnvrtc), no Rust.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
nvrtc=$(ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null | head -1)
export LD_LIBRARY_PATH="${nvrtc:+$nvrtc:}${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
echo "== parity and NVRTC (GPU required)"
MONTEUR_REQUIRE_GPU=1 "$here/cuda" --nocapture --test-threads=1 2>&1 | tee "$out/parity.log"
parity=${PIPESTATUS[0]}
echo "== frame kernel benchmark"
"$here/frame_stats" --bench 2>&1 | tee "$out/frame_stats.md"
bench=${PIPESTATUS[0]}
echo "parity exit $parity, bench exit $bench"
[ "$parity" = 0 ] && [ "$bench" = 0 ]
