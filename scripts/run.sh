#!/usr/bin/env bash
# The main job on a local file, no broker or object storage needed:
#   scripts/run.sh [INPUT] [OUT_DIR] [extra monteur process arguments]
# INPUT defaults to the PySceneDetect test clip from the shared fixtures, or,
# where they are absent, to a synthetic clip with known cuts made here.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

input="${1:-}"
out="${2:-$ROOT/out}"
shift $(( $# > 2 ? 2 : $# ))
if [ -z "$input" ]; then
  input="$FIXTURES/scenes/pyscenedetect/testvideo.mp4"
  if [ ! -f "$input" ]; then
    input="$CACHE/demo/three-shots.mp4"
    if [ ! -f "$input" ]; then
      mkdir -p "$(dirname "$input")"
      say "making a demo clip with cuts at 2 s and 4 s"
      ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=25:duration=2 \
        -f lavfi -i mandelbrot=size=1280x720:rate=25 -f lavfi -i smptehdbars=size=1280x720:rate=25:duration=2 \
        -filter_complex '[1]trim=duration=2,setpts=PTS-STARTPTS[m];[0][m][2]concat=n=3:v=1[v]' \
        -map '[v]' -c:v libx264 -pix_fmt yuv420p "$input"
    fi
  fi
fi
cargo build --release --locked --bin monteur
"$CARGO_TARGET_DIR/release/monteur" process "$input" --out "$out" "$@"
say "wrote into $out: $(ls "$out" | tr "\n" " ")(report.json says why any task was skipped)"
