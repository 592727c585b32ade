"""Mesh and texel geometry: UV rasterising, closest points and surface operators, ray casting."""
