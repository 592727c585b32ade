"""Detail maps on a face as one thing: the static map (``displacement``) and the animated wrinkles
on top of it (``wrinkle_mix``, which builds on the first)."""

from __future__ import annotations

from . import displacement, wrinkle_mix


def remove(obj) -> None:
    """Take every detail wiring off (animated wrinkles, then the map); the maps stay on disk."""
    wrinkle_mix.detach(obj)
    displacement.detach(obj)
