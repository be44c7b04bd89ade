#!/usr/bin/env bash
# The CUDA checks of benchmarks/gpu_check.py in one call (under 8 minutes on one H100/H200):
#   bash benchmarks/gpu_check.sh             # on a CUDA machine: writes benchmarks/results/gpu_check.json
#   bash benchmarks/gpu_check.sh --dry-run   # the same checks, tiny, on the CPU (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/gpu_check.py "$@"
