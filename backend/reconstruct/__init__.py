"""Photo -> job folder: fit the model to the landmarks, project the photo onto the UV tiles, write
the mesh and the scene description Blender applies (``pipeline.reconstruct``)."""
