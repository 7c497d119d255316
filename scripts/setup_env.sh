#!/usr/bin/env bash
# Create .venv from nothing: system FFmpeg libraries (for torchcodec), a fresh
# virtual environment, the pinned stack and this package in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if ! ldconfig -p 2>/dev/null | grep -q 'libavutil\.so'; then
  echo "[setup] installing the Debian ffmpeg libraries (needed by torchcodec)"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing the pinned stack (first run: a few minutes)"
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[test]"
touch .venv/.installed
echo "[setup] done: $(.venv/bin/python -c 'import torch, transformers, datasets; print("torch", torch.__version__, "transformers", transformers.__version__, "datasets", datasets.__version__)')"
