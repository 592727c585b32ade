#!/usr/bin/env bash
# The main job, on the bundled photo, in out/demo/:
#  1. photo -> textured face on the default model -> astronaut.blend + a Cycles render through the
#     camera the fit recovered (astronaut_render.png);
#  2. the same face frowning (the anger preset, AU4+5+7+24), its expression wrinkles as displacement,
#     rendered in the portrait view: a three-quarter close-up with a raking key light
#     (anger/astronaut_render.png). Anger rather than surprise because the photo's fringe is painted
#     over the forehead where surprise's lines form; the glabellar furrows are on bare skin.
# The wrinkles come from the physical crease generator (the default detail model; the shipped DetH is
# behind it: backend/learned/weights/MODEL_CARD.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FACEDET3D_BACKEND_PYTHON="$PWD/.venv-backend/bin/python"
.venv-blender/bin/python -m facedet3d reconstruct --image assets/astronaut.jpg --out out/demo --render "$@"
.venv-blender/bin/python -m facedet3d reconstruct --image assets/astronaut.jpg --out out/demo/anger --render \
    --view portrait --expression anger --details --detail-model physical "$@"
