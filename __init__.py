"""FaceDet3D for Blender: a textured 3D face from one photo.

The add-on is the thin Blender side (``addon/``, ``operators/``); the heavy work runs in a
separate backend process (``backend/``, a plain Python package with PyTorch) reached over
JSON-RPC on stdio. See docs/architecture.md.
"""

from . import addon, operators


def register():
    addon.register()
    operators.register()


def unregister():
    operators.unregister()
    addon.unregister()
