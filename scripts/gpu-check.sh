#!/usr/bin/env bash
# Runs on a GPU machine (bundle made by scripts/gpu-bundle.sh), in one go:
#  1. CPU/CUDA kernel parity with a GPU required (the tests a machine without
#     one lists as ignored) and the frame-kernel benchmark;
#  2. `monteur process --tasks scenes` on a 1080p clip: NVDEC + CUDA kernels
#     against CPU decode + CPU kernels, best of 3 each, scenes.json compared;
#     beside the decoders alone (gst-launch to fakesink);
#  3. `monteur process --tasks render` with render.encoder = auto: which
#     encoder it chose (an H200 has NVDEC but no NVENC);
#  4. 1, 2, 4 and 8 x264 renders at once beside an NVDEC analysis.
# Needs the NVIDIA driver and an NVRTC 12 or 13 library (a CUDA toolkit, or
# the nvidia-cuda-nvrtc Python package); no Rust, no GStreamer.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
log() { printf '%s\n' "$*" | tee -a "$out/summary.md"; }
: >"$out/summary.md"

B=/tmp/monteur-gpu
rm -rf "$B" && mkdir -p "$B" && tar -C "$B" -xJf "$here/bundle.tar.xz" || { echo "cannot unpack the bundle"; exit 1; }
# NVRTC: the toolkit's, else the Python wheel's.
nvrtc=$(ls -d /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null | head -1)
if ! ls "${nvrtc:-/nonexistent}"/libnvrtc.so* >/dev/null 2>&1; then
  lib=$(find / -xdev \( -name 'libnvrtc.so.13' -o -name 'libnvrtc.so.12' \) 2>/dev/null | head -1)
  nvrtc=${lib:+$(dirname "$lib")}
fi
export LD_LIBRARY_PATH="$B/lib${nvrtc:+:$nvrtc}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GST_PLUGIN_SYSTEM_PATH="$B/plugins" GST_PLUGIN_PATH="" GST_PLUGIN_SCANNER="$B/libexec/gst-plugin-scanner"
export GST_REGISTRY="$B/registry.bin"
export PATH="$B/bin:$PATH"
export MONTEUR_LOG__LEVEL=warn
clip="$B/media/clip-1080p.mp4"
log "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
log "NVRTC from: ${nvrtc:-not found}; cores: $(nproc)"

echo "== 1. parity and NVRTC (GPU required)"
MONTEUR_REQUIRE_GPU=1 "$B/tests/cuda" --include-ignored --nocapture --test-threads=1 >"$out/parity.log" 2>&1
parity=$?
log "kernel parity exit $parity: $(grep 'test result' "$out/parity.log")"
"$B/tests/frame_stats" --bench >"$out/frame_stats.md" 2>&1
bench=$?

echo "== 2. GStreamer on this machine"
gst-inspect-1.0 nvcodec >"$out/nvcodec.txt" 2>&1
# Files back from $OUT: summary.md, parity.log, frame_stats.md, nvcodec.txt,
# scenes-gpu.json, scenes-cpu.json, report-gpu.json, report-render.json.
for e in nvh264dec nvh264enc avdec_h264 x264enc; do
  rank=$(gst-inspect-1.0 "$e" 2>/dev/null | awk '/Rank/ {print $2, $3}')
  log "element $e: ${rank:-absent}"
done
# Decoders alone, the limit any analysis of this clip can reach.
# Arithmetic in awk: the machine may have no bc.
calc() { awk "BEGIN { printf \"%.2f\", $* }"; }
secs() { local s e rc; s=$(date +%s.%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s.%N); echo "$(calc "$e - $s") $rc"; }
best() { local b=999 r; for _ in 1 2 3; do r=$(secs "$@"); r=${r% *}; b=$(calc "($r < $b) ? $r : $b"); done; echo "$b"; }
frames=900
nv=$(best gst-launch-1.0 -q filesrc location="$clip" ! qtdemux ! h264parse ! nvh264dec ! fakesink sync=false)
nvs=$(best gst-launch-1.0 -q filesrc location="$clip" ! qtdemux ! h264parse ! nvh264dec ! videoscale ! video/x-raw,width=320,pixel-aspect-ratio=1/1 ! videoconvert ! video/x-raw,format=GRAY8 ! fakesink sync=false)
cpu=$(best gst-launch-1.0 -q filesrc location="$clip" ! qtdemux ! h264parse ! avdec_h264 ! fakesink sync=false)
log ""
log "| 1080p30 H.264, 900 frames, best of 3 | s | frames/s |"
log "|---|---:|---:|"
row() { log "| $1 | $2 | $(calc "$frames / $2") |"; }
row "gst-launch: NVDEC to fakesink" "$nv"
row "gst-launch: NVDEC, scale 320, GRAY8" "$nvs"
row "gst-launch: avdec_h264 to fakesink" "$cpu"

echo "== 3. monteur process --tasks scenes: GPU path vs CPU path"
# The GPU path: NVDEC ranked above libav, kernels on CUDA. The CPU path:
# NVDEC ranked out, kernels on the CPU.
gpu_env=(env GST_PLUGIN_FEATURE_RANK=nvh264dec:MAX MONTEUR_ANALYSIS__BACKEND=cuda)
cpu_env=(env GST_PLUGIN_FEATURE_RANK=nvh264dec:NONE MONTEUR_ANALYSIS__BACKEND=cpu)
g=$(best "${gpu_env[@]}" monteur process "$clip" --out "$B/gpu" --tasks scenes)
c=$(best "${cpu_env[@]}" monteur process "$clip" --out "$B/cpu" --tasks scenes)
row "monteur process --tasks scenes, NVDEC + CUDA kernels" "$g"
row "monteur process --tasks scenes, avdec + CPU kernels" "$c"
if cmp -s "$B/gpu/scenes.json" "$B/cpu/scenes.json"; then same=identical; else same=DIFFERENT; fi
cp "$B/gpu/scenes.json" "$out/scenes-gpu.json"; cp "$B/cpu/scenes.json" "$out/scenes-cpu.json"
cp "$B/gpu/report.json" "$out/report-gpu.json"
log ""
log "scenes.json GPU vs CPU path: $same; backends: $(grep -h '"backend"' "$B/gpu/report.json" "$B/cpu/report.json" | tr -d ' \n')"
log "cuts found: $(grep -c '"kind": "cut"' "$B/gpu/scenes.json") (2 made)"

echo "== 4. render with encoder = auto"
r=$(secs monteur process "$clip" --out "$B/render" --tasks render)
cp "$B/render/report.json" "$out/report-render.json" 2>/dev/null
log "render (auto): $(grep -o '"encoder": "[a-z0-9]*"' "$B/render/report.json") in ${r% *} s, exit ${r#* }"

echo "== 5. x264 renders at once beside an NVDEC analysis"
log ""
log "| renders at once | render s (mean) | render frames/s each | all renders frames/s | NVDEC analysis frames/s beside them |"
log "|---:|---:|---:|---:|---:|"
for n in 1 2 4 8; do
  pids=(); start=$(date +%s.%N)
  for i in $(seq "$n"); do
    ( s=$(date +%s.%N); monteur process "$clip" --out "$B/r$i" --tasks render >/dev/null 2>&1; e=$(date +%s.%N); calc "$e - $s" >"$B/r$i.t" ) &
    pids+=($!)
  done
  a=$(secs "${gpu_env[@]}" monteur process "$clip" --out "$B/a" --tasks scenes); a=${a% *}
  wait "${pids[@]}"
  mean=$(cat "$B"/r*.t | awk '{s+=$1} END {printf "%.2f", s/NR}')
  log "| $n | $mean | $(calc "$frames / $mean") | $(calc "$n * $frames / $mean") | $(calc "$frames / $a") |"
  rm -rf "$B"/r* "$B/a"
done
echo "parity exit $parity, bench exit $bench"
[ "$parity" = 0 ] && [ "$bench" = 0 ] && [ "$same" = identical ]
