"""Expression wrinkles as a few creases where the anatomy puts them (the physical detail model):
``anatomy`` (which AU makes which lines, with their sizes and sources), ``trace`` (lines across
the skin's compression), ``render`` (their relief), ``generator`` (the map: :func:`crease_map`)."""
