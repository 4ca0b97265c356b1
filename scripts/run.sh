#!/usr/bin/env bash
# The main job on a local file, no broker or object storage needed:
#   scripts/run.sh [INPUT] [OUT_DIR] [extra monteur process arguments]
# INPUT defaults to a demo clip made here once: read speech over five shots,
# so scenes, captions, the cut plan and its exports, and the render all have
# something to show.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

input="${1:-}"
out="${2:-$ROOT/out}"
shift $(( $# > 2 ? 2 : $# ))
# The demo: 40 s of real speech (pocketsphinx-testdata, from apt, with its
# reference transcripts; pauses between the utterances) over five shots of generated pictures, hard cuts
# every 8 s: every task has something to find. Made once into the cache.
demo_clip() {
  local out="$CACHE/demo/talk-five-shots.mp4" data=/usr/share/pocketsphinx/test/data/librivox
  if [ ! -f "$out" ]; then
    [ -d "$data" ] || die "pocketsphinx-testdata is missing: run scripts/setup.sh"
    mkdir -p "$(dirname "$out")"
    say "making the demo clip (speech over five shots) into $out"
    local speech="$CACHE/demo/speech.wav" gap="$CACHE/demo/gap.wav" parts=()
    sox -n -r 16000 -c 1 -b 16 "$gap" trim 0 0.7 || die "sox could not make a pause"
    for w in "$data"/*.wav "$data"/../cards/*.wav; do parts+=("$w" "$gap"); done
    sox "${parts[@]}" "$speech" || die "sox could not join the speech"
    ffmpeg -v error -y \
      -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=8" \
      -f lavfi -i "smptehdbars=size=1280x720:rate=25:duration=8" \
      -f lavfi -i "mandelbrot=size=1280x720:rate=25" \
      -f lavfi -i "colorchart=rate=25:patch_size=64x64,scale=1280:720,setsar=1" \
      -f lavfi -i "gradients=size=1280x720:rate=25:duration=8" \
      -i "$speech" \
      -filter_complex "[2]trim=duration=8,setpts=PTS-STARTPTS[m];[3]trim=duration=8,setpts=PTS-STARTPTS[l];[0]format=yuv420p[a];[1]format=yuv420p[b];[m]format=yuv420p[c];[l]format=yuv420p[d];[4]format=yuv420p[e];[a][b][c][d][e]concat=n=5:v=1[v];[5]apad,atrim=duration=40[s]" \
      -map '[v]' -map '[s]' -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 50 \
      -c:a aac -b:a 128k -ar 48000 -shortest "$out.tmp.mp4" || die "ffmpeg could not make the demo clip"
    mv "$out.tmp.mp4" "$out"
  fi
  printf '%s\n' "$out"
}

if [ -z "$input" ]; then
  input="$(demo_clip)"
fi
cargo build --release --locked --bin monteur
"$CARGO_TARGET_DIR/release/monteur" process "$input" --out "$out" "$@"
say "wrote into $out:"
for f in "$out"/*; do
  case "$(basename "$f")" in
    scenes.json) what="shots and transitions (cuts, fades, dissolves)" ;;
    transcript.json) what="the words with their times" ;;
    captions.srt|captions.vtt) what="subtitles" ;;
    captions.words.vtt|captions.ass) what="word-by-word (karaoke) subtitles" ;;
    cutplan.json) what="the automatic edit: frames kept and why" ;;
    cutplan.otio|cutplan.edl|cutplan.fcpxml) what="the edit for an editing program" ;;
    render.mp4) what="the edit rendered, captions muxed" ;;
    report.json) what="what ran, how long, and why any task was skipped" ;;
    *) what="" ;;
  esac
  say "  $f${what:+  ($what)}"
done
