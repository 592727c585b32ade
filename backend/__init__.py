"""FaceDet3D backend: a plain Python package (never imports bpy).

Stages read and extend one data model, :class:`backend.face_data.FaceReconstruction`,
and write their results as files (JSON, NPZ, PNG, EXR) into a job folder that the
Blender side turns into a scene.
"""

__version__ = "0.1.0"
