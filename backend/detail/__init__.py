"""Detail maps of a reconstructed face: the person's own detail from the photo (``photo/``), skin
strain, expression wrinkles (``wrinkles/``), micro relief, and the detail models that make maps for
a target expression (``registry``: the physical model and the learned nets), serving ``details``
(``maps``) and animated wrinkles (``rig``)."""
