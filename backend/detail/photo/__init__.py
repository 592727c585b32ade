"""The person's own skin detail D(I_x) from the photo, by shape from shading on the proxy.

The fitted morphable model (the *proxy*) is smooth: it has the person's shape at the scale of
centimetres but none of their wrinkles, folds or bumps. Those are in the photo as *shading*
the proxy does not explain. Following the FaceDet3D / FDS line of work (Dib et al.; Ling et
al.) the detail is recovered in the face UV tile:

1. Per texel of tile 0, gather the photo's colour (linearised sRGB), the proxy's normal and a
   visibility weight -- :func:`backend.reconstruct.texture.project_texture` does the projection, occlusion
   and weighting; :func:`texel_surface` rasterises the same UV layout (:mod:`backend.geometry.raster`)
   for surface points, normals and the texel -> surface Jacobian. All of this runs at a
   *working size* no finer than the photo resolves (:func:`working_size`; a 100-pixel-wide
   face holds nothing at 1024² texels) and the maps are interpolated up to the asked size.
2. Fit 9 spherical-harmonic lighting coefficients per colour channel and a low-frequency albedo
   (robust least squares, alternating; :mod:`backend.geometry.sh_lighting`) on visible skin.
3. A skin mask: a geometric prior from the 68 landmark vertices' UV positions (eyes, brows,
   lips, nostrils out; only the face oval in), minus hair: a colour test against the
   statistics of certain skin, kept only where it forms masses wider than a crease (fringe,
   sideburns, beard, dark brows), with a margin; and times how squarely the camera sees it.
4. The shading residual ``r = I / (albedo * shading) - 1`` on skin, band-passed: below the
   photo's own resolution it is interpolation and JPEG noise; above a few millimetres it is the
   proxy's shape error and lighting-model error, not skin detail. Specular highlights and
   cast shadows are outliers to a Lambertian model: robust weights, highlights cut out. Marks
   that are not relief -- glasses frames, strands of hair, moles, highlights (:mod:`.marks`) --
   have their residual replaced by the one around them.
5. Linearised shape from shading: a displacement ``d`` along the normal tilts the normal by
   ``-grad_s d`` (the surface gradient), which changes the shading by
   ``dS/dn . (-grad_s d)``. Only the component of the tilt along the tangent-plane direction
   in which shading changes most (the projected ``dS/dn``) is observable; so each texel gives
   one *directional-derivative* equation ``c . grad d = r``. All of them, a weak membrane term
   for the unobserved direction and a screening term (a high-pass with the same cut-off as the
   residual's) are solved together as one sparse screened-Poisson system (conjugate gradients),
   in millimetres (the Jacobian carries the texel -> mm scale).
6. Soft-clamped to the range skin detail has (about +-0.5 mm) and faded to 0 outside the skin
   mask.

Output convention (the project's detail maps): a single channel, tile 0, row 0 = v = 1,
millimetres along the smooth proxy's normal, 0 = the proxy surface, positive = outward.

What this cannot separate: albedo detail at the same scale as geometry that is neither dark,
round nor joined to hair (freckles under a photo pixel, stubble) reads as shading and becomes
relief; the component of relief with no shading
gradient (e.g. a crease running along the light direction) is lost. Both are the known
limits of single-image shape from shading; a learned prior (DetH) is the project's answer.

Modules: ``surface`` (texel geometry), ``filters``, ``lighting``, ``masks``, ``marks``, ``shading``, ``extract``
(the whole run, :func:`extract.extract_photo_detail`).
"""
