#!/usr/bin/env bash
# Optional, for the ASR benchmark only (about 470 MB, so not part of setup.sh):
# faster-whisper and its dependencies, pinned, in a venv of their own.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
VENV="$CACHE/asr-peer"
PINS=(
  faster-whisper==1.2.1 ctranslate2==4.8.5 av==18.1.0 tokenizers==0.23.3 huggingface_hub==2.4.0
  onnxruntime==1.32.0 numpy==2.4.6 tqdm==4.70.1 PyYAML==6.0.4 packaging==26.4 filelock==4.3.1
  fsspec==2026.9.0 hf-xet==1.8.0 httpx2==2.16.2 httpcore2==2.16.2 h11==0.16.0 anyio==4.16.0 idna==3.20
  truststore==0.10.5 typing_extensions==4.16.0 click==8.5.1 flatbuffers==25.12.19 protobuf==7.36.2
)
pinned_venv "$VENV" "${PINS[@]}"
say "ASR peer ready: $VENV"
