"""The face skin's material: what the Principled BSDF gets besides the texture.

Sources and choices (docs/skin_material.md has the table and what could not be found):

* **Subsurface radius**: the diffuse mean free path 1/σ_tr, σ_tr = sqrt(3 σ_a (σ_a + σ'_s)), of
  Jensen et al. 2001's measured "Skin1" coefficients (mm⁻¹; as pbrt-v3 transcribes them):
  (3.67, 1.37, 0.68) mm for red, green, blue — red light scatters about five times as far as blue.
* **Subsurface weight 0.15**: chosen, not measured. The photo texture already holds the skin's own
  scattering as the camera saw it; a full weight would blur it a second time.
* **IOR 1.52**: measured on the cheek in vivo (Yoshida et al. 2013, 1.51–1.53 at 550 nm).
* **Roughness and specular by region**: the ordering is published, the values are chosen. Sebum
  is higher on the forehead, nose and chin than on the cheeks (Youn et al. 2005), the nose has the
  densest follicles (Pagnoni et al.: up to 1220 /cm² against 455 /cm² on the lateral forehead), and
  Weyrich et al. 2006's measured Torrance–Sparrow parameters over ten face regions make "the lips and
  nose shinier" (d'Eon & Luebke, GPU Gems 3 ch. 14). Weyrich's per-region numbers themselves could
  not be read here (only the paper's first page is reachable), so the magnitudes below are this
  project's: the cheeks keep the roughness the face had (0.55), the T-zone is a little glossier,
  the nose tip and the lips most.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
from PIL import Image

from ..core.image_io import save_png
from ..models import regions
from ..models.cache import cache_dir
from ..models.morphable import MorphableModel

# Jensen, Marschner, Levoy & Hanrahan 2001, "A Practical Model for Subsurface Light Transport",
# measured skin ("Skin1"), mm^-1, red / green / blue
SKIN1_SIGMA_S_PRIME = (0.74, 0.88, 1.01)
SKIN1_SIGMA_A = (0.032, 0.17, 0.48)


def diffuse_mean_free_path_mm(sigma_s_prime=SKIN1_SIGMA_S_PRIME, sigma_a=SKIN1_SIGMA_A) -> list[float]:
    """1/σ_tr per channel (mm): how far light diffuses under the skin, Blender's Subsurface Radius."""
    sp, sa = np.asarray(sigma_s_prime, np.float64), np.asarray(sigma_a, np.float64)
    return [round(float(x), 3) for x in 1.0 / np.sqrt(3.0 * sa * (sa + sp))]


SUBSURFACE_RADIUS_MM = diffuse_mean_free_path_mm()
SUBSURFACE_WEIGHT = 0.15
SKIN_IOR = 1.52  # Yoshida et al. 2013, cheek, 550 nm

# Principled BSDF Roughness (GGX alpha = roughness^2) and Specular IOR Level (0.5: the IOR's own
# reflectance) per region; elsewhere the cheeks' values. Chosen magnitudes, published ordering.
CHEEK_ROUGHNESS, CHEEK_SPECULAR = 0.55, 0.5
REGION_ROUGHNESS = {"forehead": 0.47, "glabella": 0.47, "chin": 0.47, "nose": 0.42, "nose_tip": 0.38,
                    "lips": 0.36}
REGION_SPECULAR = {"forehead": 0.55, "glabella": 0.55, "chin": 0.55, "nose": 0.58, "nose_tip": 0.6,
                   "lips": 0.6}
SURFACE_MAP_SIZE = 512  # the values change over centimetres: 0.5 mm per texel is plenty
FEATHER_MM = 10.0  # regions blend into each other over about a centimetre


def surface_map(model: MorphableModel, size: int = SURFACE_MAP_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 over the face tile (row 0 = v 1), linear values ×255: red the
    Specular IOR Level, green the Roughness (glTF's metallic-roughness layout: roughness in green,
    metallic 0 in blue). The same for every photo on a model: made once (~0.9 s, the regions'
    distance fields) and kept in the models cache under a key of the model's landmark layout and
    the values."""
    layout = regions.RegionLayout.from_model(model)
    h = hashlib.sha1(np.ascontiguousarray(layout.lm, np.float64).tobytes())
    h.update(json.dumps([layout.mm_per_uv, REGION_ROUGHNESS, REGION_SPECULAR, CHEEK_ROUGHNESS, CHEEK_SPECULAR,
                         FEATHER_MM, size], sort_keys=True).encode())
    path = cache_dir() / f"skin_surface_{h.hexdigest()[:16]}.png"
    try:
        with Image.open(path) as im:
            cached = np.asarray(im.convert("RGB"))
        if cached.shape == (size, size, 3):
            return cached
    except (OSError, ValueError):
        pass  # not made yet, or damaged: made again
    out = _make_surface_map(model, size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(path, out)
    except OSError:
        pass  # a read-only cache only costs the making again next process
    return out


def _make_surface_map(model: MorphableModel, size: int) -> np.ndarray:
    rough = regions.smooth_field(REGION_ROUGHNESS, model, size, CHEEK_ROUGHNESS, feather_mm=FEATHER_MM)
    spec = regions.smooth_field(REGION_SPECULAR, model, size, CHEEK_SPECULAR, feather_mm=FEATHER_MM)
    out = np.zeros((size, size, 3), np.uint8)
    out[..., 0] = np.clip(np.rint(spec * 255.0), 0, 255)
    out[..., 1] = np.clip(np.rint(rough * 255.0), 0, 255)
    return out
