#!/usr/bin/env bash
# The main job, on the bundled photo, in out/demo/:
#  1. photo -> textured face on the default model -> astronaut.blend + a Cycles render through the
#     camera the fit recovered (astronaut_render.png);
#  2. the same face surprised (AU1+2+5+27), its expression wrinkles as displacement, rendered in the
#     portrait view: a three-quarter close-up with a raking key light (surprise/astronaut_render.png).
# The wrinkles come from the physical crease generator (the default detail model; the shipped DetH is
# behind it: backend/learned/weights/MODEL_CARD.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACEDET3D_BACKEND_PYTHON="$PWD/.venv-backend/bin/python"
.venv-blender/bin/python -m facedet3d reconstruct --image assets/astronaut.jpg --out out/demo --render "$@"
.venv-blender/bin/python -m facedet3d reconstruct --image assets/astronaut.jpg --out out/demo/surprise --render \
    --view portrait --expression surprise --details --detail-model physical "$@"
