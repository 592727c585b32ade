#!/usr/bin/env bash
# All tests: the backend's in its own environment, then the Blender side on the real bpy module.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export FACEDET3D_BACKEND_PYTHON="$PWD/.venv-backend/bin/python"
status=0
echo "== backend tests (.venv-backend, Python 3.11) =="
.venv-backend/bin/python -m pytest -q tests/backend "$@" || status=1
echo "== Blender-side tests (.venv-blender, bpy 5.2.3) =="
.venv-blender/bin/python -m pytest -q tests/blender tests/test_rpc.py "$@" || status=1
exit $status
