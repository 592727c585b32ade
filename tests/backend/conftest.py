"""Shared backend fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.reconstruct.pipeline import reconstruct

PHOTO = Path(__file__).resolve().parents[2] / "assets" / "astronaut.jpg"


@pytest.fixture(scope="session")
def small_job(tmp_path_factory):
    """``small_job(name)``: a real reconstruction of the bundled photo with small textures (fast),
    in a folder of its own (tests write maps into it)."""
    def make(name: str) -> Path:
        out = tmp_path_factory.mktemp(name) / "astronaut"
        reconstruct(str(PHOTO), str(out), options={"texture_size": 512, "head_texture_size": 128})
        return out
    return make
