"""FaceDet3D for Blender: a textured 3D face from one photo.

The add-on is the thin Blender side (``addon/``); the heavy work runs in a separate backend
process (``backend/``, a plain Python package with PyTorch) reached over JSON-RPC on stdio; both
read the wire and the job folder through ``protocol/``. See docs/architecture.md.
"""

from . import addon


def register():
    addon.register()


def unregister():
    addon.unregister()
