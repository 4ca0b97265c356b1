#!/usr/bin/env bash
# Builds, here, what the GPU check runs on a machine with an NVIDIA GPU but no
# Rust: the kernels' test binary (CPU/CUDA parity, NVRTC compile) and the
# frame-kernel benchmark, copied into .gpu/ (git-ignored) with the check
# script. On the GPU machine, from the repository root:
#   bash .gpu/gpu-check.sh        (writes its logs to $OUT or ./gpu-out)
# NVRTC comes from the GPU machine's CUDA toolkit (too large to carry).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
rm -rf .gpu && mkdir -p .gpu
binaries() {
  cargo "$@" --locked -p monteur-kernels --no-run --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("cuda", "frame_stats"):
        print(m["target"]["name"], m["executable"])'
}
{ binaries test --release --test cuda; binaries bench --bench frame_stats; } | while read -r name path; do
  cp "$path" ".gpu/$name"
done
[ -x .gpu/cuda ] && [ -x .gpu/frame_stats ] || die "could not build the kernel binaries"
cp scripts/gpu-check.sh .gpu/
say "bundle ready in .gpu/ ($(du -sh .gpu | cut -f1)); carry it with the device tool: carry [\".gpu\"], command \"bash .gpu/gpu-check.sh\""
