"""Blender side of FaceDet3D, thin: it never computes what the backend computes.

    link/       the backend: where things are (settings), the JSON-RPC client and the session's
                process, input checks shared by the operators and the headless CLI (no bpy here)
    scene/      building the face from a job folder and editing it: AU rig, detail displacement,
                animated wrinkles, storage beside the .blend, glTF export
    ui/         preferences, properties saved in the .blend, sidebar panels
    operators/  what the buttons run: validate, call the backend, edit the scene, leave it as it
                was on failure
    headless    the command line (``python -m facedet3d`` / ``blender -b --python facedet3d.py``)
The job folder and the wire are read through the shared ``protocol`` package.
"""

from __future__ import annotations

from . import operators, ui
from .link import session
from .scene import legacy, storage


def register():
    ui.register()
    operators.register()
    storage.register_handlers()
    legacy.register_handlers()


def unregister():
    legacy.unregister_handlers()
    storage.unregister_handlers()
    session.shutdown()
    operators.unregister()
    ui.unregister()
