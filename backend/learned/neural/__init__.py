"""FaceDet3D's rendering network R (§3.3): NTex predicts a neural texture from the photo's texture
map; Tex2Im renders it through the proxy's raster (g_theta, detail-invariant, low resolution) and the
detailed geometry's raster (g_omega, the details), and sums the two. ``rasters`` makes the per-pixel
inputs (the backend's ray caster or Blender's passes), ``nets`` the networks, ``subject`` one
person's training views, ``frame`` a neural image for a Blender frame."""
