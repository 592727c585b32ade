#!/usr/bin/env bash
# The main job: the bundled photo -> textured face on the default model -> .blend + Cycles render in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACEDET3D_BACKEND_PYTHON="$PWD/.venv-backend/bin/python"
exec .venv-blender/bin/python -m facedet3d reconstruct --image assets/astronaut.jpg --out out/demo --render "$@"
