#!/usr/bin/env bash
# The multi-GB images CI does not build (no GPU there, 90 minutes): the PyTorch CUDA, ONNX Runtime CUDA and
# TensorFlow GPU images and the second PyTorch version, built with podman, checked without a GPU (every CUDA
# library loads, CPU serving says "no GPU found", --device cuda exits 3), pushed to a test registry, measured
# (out/gpu-images/NAME.json), then removed. Needs root, ~20 GB free disk while it runs, and about an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export PREBAKE_IMAGE_TESTS=1 PREBAKE_GPU_IMAGE_TESTS=1
exec .venv/bin/pytest -m gpu_images tests/images/test_gpu_images.py -v -s "$@"
