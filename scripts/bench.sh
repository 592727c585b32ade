#!/usr/bin/env bash
# Benchmarks: backend stages (backend env), then scene build and a 512^2 Cycles render (bpy env).
# Prints medians; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACEDET3D_BACKEND_PYTHON="$PWD/.venv-backend/bin/python"
.venv-backend/bin/python -m backend bench "$@"
job=out/bench/job
rm -rf "$job"
.venv-backend/bin/python -m backend reconstruct --image assets/astronaut.jpg --out "$job" >/dev/null 2>&1
.venv-backend/bin/python -c "import sys; from backend.detail.maps import build_details; build_details(sys.argv[1])" "$job" >/dev/null
.venv-blender/bin/python -m facedet3d bench --job "$job"
