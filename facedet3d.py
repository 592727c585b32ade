"""Entry point for headless use; see addon/headless.py.

    python -m facedet3d reconstruct --image photo.jpg --out DIR --render      (bpy module)
    blender -b --python facedet3d.py -- reconstruct --image photo.jpg --out DIR --render

Loads this folder as the ``facedet3d`` package whatever the folder is called, registers the
add-on so the .blend carries its properties, and runs the command.
"""

import importlib.util
import sys
from pathlib import Path


def load_package():
    root = Path(__file__).resolve().parent
    if "facedet3d_ext" in sys.modules:
        return sys.modules["facedet3d_ext"]
    spec = importlib.util.spec_from_file_location("facedet3d_ext", root / "__init__.py",
                                                  submodule_search_locations=[str(root)])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["facedet3d_ext"] = pkg
    spec.loader.exec_module(pkg)
    return pkg


def _argv():
    # `blender -b --python facedet3d.py -- ARGS`: our arguments follow "--".
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


if __name__ == "__main__":
    pkg = load_package()
    pkg.register()
    from facedet3d_ext.addon import headless  # noqa: E402  (after the package is loaded)

    code = headless.main(_argv())
    sys.stdout.flush()
    sys.exit(code)
