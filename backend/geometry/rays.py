"""Ray casting against a triangle mesh (visibility of texels from the camera, landmarks on renders
of a mesh): trimesh's embree-backed intersector."""

from __future__ import annotations

import numpy as np
import trimesh
from trimesh.ray import has_embree

if has_embree:  # embreex is in the backend's requirements
    from trimesh.ray.ray_pyembree import RayMeshIntersector
else:  # pure-python fallback: correct but far slower
    from trimesh.ray.ray_triangle import RayMeshIntersector


def ray_caster(mesh_vertices: np.ndarray, occ_tris: np.ndarray) -> RayMeshIntersector:
    mesh = trimesh.Trimesh(vertices=mesh_vertices, faces=occ_tris, process=False, validate=False)
    return RayMeshIntersector(mesh)
