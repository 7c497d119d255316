#!/usr/bin/env bash
# Create .venv from nothing: system FFmpeg libraries (for torchcodec), a fresh
# virtual environment, the pinned stack and this package in editable mode; Chromium for the
# demo's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

apt_install() {  # apt_install REASON PACKAGE...
  echo "[setup] installing Debian ${*:2} ($1)"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${@:2}" >/dev/null
}

if ! ldconfig -p 2>/dev/null | grep -q 'libavutil\.so'; then
  apt_install "FFmpeg libraries for torchcodec" ffmpeg
fi
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install "headless browser for the demo's test" chromium chromium-driver
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "[setup] installing the pinned stack (first run: a few minutes)"
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[train,eval,demo,test]"
# The oldest transformers the model family supports (pyproject.toml's floor), beside the pinned one: the test
# suite runs a checkpoint's own code on it (tests/models/test_remote_code.py), with PYTHONPATH pointing here.
FLOOR=$(grep -oE '^ *"transformers>=[0-9.]+' pyproject.toml | head -n 1 | sed -E 's/.*>=//')
if [ ! -d ".venv/transformers-floor/transformers-$FLOOR.dist-info" ] && [ ! -d ".venv/transformers-floor/transformers-$FLOOR.0.dist-info" ]; then
  echo "[setup] installing transformers $FLOOR (the supported floor) into .venv/transformers-floor"
  rm -rf .venv/transformers-floor
  .venv/bin/python -m pip install -q --no-deps --target .venv/transformers-floor "transformers==$FLOOR"
fi
touch .venv/.installed
echo "[setup] done: $(.venv/bin/python -c 'import torch, transformers, datasets; print("torch", torch.__version__, "transformers", transformers.__version__, "datasets", datasets.__version__)')"
