"""Building a face in the scene from a job folder, and editing it: the AU rig, detail displacement,
animated wrinkles, where files live beside the .blend, glTF export. Only applies what the backend
computed (``protocol.scene``)."""

# the package's modules, reachable as attributes (scene.builder, scene.details, ...)
from . import au_rig, builder, details, displacement, gltf_export, storage, wrinkle_mix  # noqa: F401
