"""FaceDet3D backend: a plain Python package (never imports bpy).

Stages read and extend one data model, :class:`backend.face_data.FaceReconstruction`,
and write their results as files (JSON, NPZ, PNG, EXR) into a job folder that the
Blender side turns into a scene.
"""

import os

# The fit's matrices are small (hundreds of rows): multi-threaded OpenBLAS only thrashes on
# them, seconds instead of milliseconds when the cores are shared. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
