#!/usr/bin/env bash
# Builds, here, what the GPU check runs on a machine with an NVIDIA GPU and
# its driver but no Rust and no GStreamer, into .gpu/ (git-ignored):
#   .gpu/gpu-check.sh     the check (scripts/gpu-check.sh)
#   .gpu/bundle.tar.xz    a relocatable tree:
#     bin/     monteur (release), gst-launch-1.0, gst-inspect-1.0
#     tests/   the kernels' test binary (CPU/CUDA parity) and kernel benchmark
#     lib/     every shared library those and the plugins need, from this
#              machine's Debian packages, but the C runtime and the GPU
#              driver's own (the target has newer ones)
#     plugins/ the GStreamer plugins monteur's graphs use, nvcodec (NVDEC,
#              NVENC) included; libexec/ the plugin scanner
#     media/   a 30 s 1080p30 H.264 + AAC clip with two hard cuts
# On the GPU machine, from the repository root:
#   bash .gpu/gpu-check.sh        (writes its logs to $OUT or ./gpu-out)
# NVRTC comes from the GPU machine (its CUDA toolkit or Python wheel).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
GST=/usr/lib/x86_64-linux-gnu/gstreamer-1.0
# pango (textoverlay: captions burned in) is left out: the check burns none,
# and its fonts and shaping libraries would double the bundle.
PLUGINS=(coreelements typefindfunctions playback isomp4 videoconvertscale app
  audioconvert audioresample libav x264 nvcodec videoparsersbad audioparsers)

stage="$CACHE/gpu-bundle"
rm -rf .gpu "$stage" && mkdir -p .gpu "$stage"/{bin,tests,lib,plugins,libexec,media}

# --- binaries -----------------------------------------------------------------
binaries() {
  cargo "$@" --locked -p monteur-kernels --no-run --message-format=json \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("cuda", "frame_stats"):
        print(m["target"]["name"], m["executable"])'
}
{ binaries test --release --test cuda; binaries bench --bench frame_stats; } | while read -r name path; do
  cp "$path" "$stage/tests/$name"
done
[ -x "$stage/tests/cuda" ] && [ -x "$stage/tests/frame_stats" ] || die "could not build the kernel binaries"
cargo build --release --locked --bin monteur
cp "$CARGO_TARGET_DIR/release/monteur" "$stage/bin/"
cp /usr/bin/gst-launch-1.0 /usr/bin/gst-inspect-1.0 "$stage/bin/"
cp /usr/lib/x86_64-linux-gnu/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner "$stage/libexec/"
for p in "${PLUGINS[@]}"; do
  cp "$GST/libgst$p.so" "$stage/plugins/" || die "plugin $p missing (scripts/setup.sh installs it)"
done
strip --strip-debug "$stage"/bin/* "$stage"/tests/* "$stage"/libexec/* 2>/dev/null || true

# --- libav's container and filter libraries, as stubs --------------------------
# gst-libav links libavformat (its avdemux_*/avmux_* elements) and libavfilter
# (avdeinterlace); monteur's graphs use neither (qtdemux and mp4mux are
# GStreamer's own), but the two pull in some 150 MB of network, XML, speech
# and filter libraries that would not fit the GPU machine's 64 MiB transfer.
# Stubs with the same soname and versioned symbols take their place: the
# iterators return nothing, so gst-libav registers no libav (de)muxer.
declare -A seen=()
stub() { # SONAME VERSION
  local soname=$1 version=$2 dir; dir=$(mktemp -d)
  local syms; syms=$(nm -D --undefined-only "$GST/libgstlibav.so" | awk '{print $2}' | grep "@$version\$" | sed 's/@.*//')
  { for s in $syms; do echo "void *$s(void) { return 0; }"; done; } >"$dir/stub.c"
  { echo "$version {"; echo "  global:"; for s in $syms; do echo "    $s;"; done; echo "  local: *;"; echo "};"; } >"$dir/v.map"
  gcc -shared -fPIC -O1 -Wl,-soname,"$soname" -Wl,--version-script="$dir/v.map" "$dir/stub.c" -o "$stage/lib/$soname"
  rm -rf "$dir"
  seen[$soname]=1
}
stub libavformat.so.59 LIBAVFORMAT_59
stub libavfilter.so.8 LIBAVFILTER_8

# --- libraries: the closure of what the binaries and plugins load --------------
# Left out: the C runtime (the target's is newer and must be the one loaded)
# and the NVIDIA driver's libraries (the target's driver provides them).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libgcc_s\.so|libstdc\+\+\.so|libcuda\.so|libnvcuvid\.so|libnvidia-encode\.so)' 
# Each file's own DT_NEEDED entries (not ldd's transitive list, which would
# pull the stubbed libraries' dependencies back in), found where the loader
# would find them here.
# (The cache is read once: awk leaving early would SIGPIPE ldconfig.)
ldcache=$(ldconfig -p)
locate() { awk -v n="$1" '$1 == n && /x86-64/ && !found {print $NF; found = 1}' <<<"$ldcache"; }
queue=("$stage"/bin/* "$stage"/tests/* "$stage"/libexec/* "$stage"/plugins/* "$stage"/lib/*)
while [ ${#queue[@]} -gt 0 ]; do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for name in $(readelf -d "$f" 2>/dev/null | awk '/NEEDED/ {gsub(/[][]/, "", $5); print $5}'); do
    [[ $name =~ $skip ]] && continue
    [ -n "${seen[$name]:-}" ] && continue
    seen[$name]=1
    path=$(locate "$name")
    [ -n "$path" ] || die "library $name (needed by $(basename "$f")) not found"
    cp -L "$path" "$stage/lib/$name"
    queue+=("$stage/lib/$name")
  done
done
strip --strip-debug "$stage"/lib/* "$stage"/plugins/* 2>/dev/null || true

# --- the clip ---------------------------------------------------------------------
clip="$CACHE/demo/gpu-1080p.mp4"
if [ ! -f "$clip" ]; then
  mkdir -p "$(dirname "$clip")"
  say "making a 30 s 1080p30 clip with cuts at 10 s and 20 s"
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=10 \
    -f lavfi -i "life=size=480x270:rate=30:mold=10:ratio=0.1:death_color=#C83232:life_color=#00ff00,scale=1920:1080:flags=neighbor" \
    -f lavfi -i smptehdbars=size=1920x1080:rate=30:duration=10 \
    -f lavfi -i sine=frequency=440:sample_rate=48000:duration=30 \
    -filter_complex '[1]trim=duration=10,setpts=PTS-STARTPTS[m];[0][m][2]concat=n=3:v=1[v]' \
    -map '[v]' -map 3:a -c:v libx264 -preset veryfast -crf 30 -pix_fmt yuv420p -c:a aac -b:a 96k \
    -movflags +faststart "$clip"
fi
cp "$clip" "$stage/media/clip-1080p.mp4"

cp scripts/gpu-check.sh .gpu/
tar -C "$stage" -cJf .gpu/bundle.tar.xz .
size=$(du -m .gpu/bundle.tar.xz | cut -f1)
say "bundle ready: .gpu/bundle.tar.xz ${size} MiB compressed ($(du -sm "$stage" | cut -f1) MiB unpacked, $(ls "$stage/lib" | wc -l) libraries); carry [\".gpu\"], command \"bash .gpu/gpu-check.sh\""
