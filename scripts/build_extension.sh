#!/usr/bin/env bash
# Validate the manifest and build the extension zip into dist/ with Blender's own tool.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EXT=$(ls .venv-blender/lib/python3.13/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py | head -n1)
.venv-blender/bin/python "$EXT" validate .
mkdir -p dist
.venv-blender/bin/python "$EXT" build --source-dir . --output-dir dist
