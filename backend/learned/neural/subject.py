"""One person's training material for the neural renderer: the photo's own view at a few framings,
with the inputs of Tex2Im for the photo's detail D(I_x) and for "fake" details (the Augmented
Wrinkle Loss, FaceDet3D Eq. 14).

Per view (a square window around the face, resampled to ``size`` pixels):
- ``target``: the photo there (sRGB 0..1);
- ``uv``, ``weight``: the raster's UVs and the face tile's fade (the losses' weight);
- ``shaded_proxy`` / ``shaded_detail``: the albedo (``albedo.png``) times the photo's SH
  irradiance at the proxy's / the detailed normals (sRGB);
- per fake map z: ``aug_detail[z]`` (shaded albedo with D(I_z*)), ``aug_target[z]`` = the photo
  re-shaded, ``I_x * Shading*(I_x) / Shading(I_x)`` (linear, then sRGB), and ``aug_shading[z]``
  = Shading* (luminance, linear): what the DSL reader must read back.
The fake details are maps of the detail models (the physical model, and DetH when its weights are
there) for random expressions at random ages and seeds: maps the photo's texture knows nothing of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from protocol import jsonfile
from protocol import job as job_files

from ...core.image_io import load_rgb
from ...core.imaging import LUMA, linear_to_srgb, srgb_to_linear
from ...core.progress import Job
from ...detail import registry
from ...detail.face import ReconstructedFace
from ...detail.photo.relight import photo_lighting
from ...detail.photo.world_light import A_L
from ...geometry import sh_lighting
from ...geometry.raster import sample_tile
from ...models import emotions
from . import rasters as ras

TEXTURE_SIZE = 512  # the texture map NTex reads and the NTM it writes (face tile): about the photo's own resolution on a portrait
VIEW_SIZE = 256  # training views, pixels
FRAMINGS = (1.0, 0.8, 1.25)  # window side / the face's extent: tight, tighter, looser
# The fake details are deepened by this factor: at a photo's framing most of a detail map's
# shading is 1-4 levels of 8 bits (a one-off measurement on the bundled photo), under its own noise;
# deepened, the loss sees them. Shading is what the renderer must follow, so a deeper map asks
# for the same mapping, only louder.
AUG_GAIN = 3.0
SHADING_FLOOR = 0.05  # Shading(I_x) below this is not divided by (black in, black out)


@dataclass
class Assets:
    """What rendering needs besides a raster: the albedo tile (linear), the NTex input (sRGB,
    TEXTURE_SIZE²), the photo's irradiance SH in Blender's world frame and the face fade."""

    albedo: np.ndarray
    texture: np.ndarray
    irradiance_world: np.ndarray
    fade: np.ndarray


def irradiance_world(job_dir) -> np.ndarray:
    """(9,3) irradiance SH in Blender's world frame: the photo's light as the world shows it
    (``lighting.json``'s radiance times A_l / pi, the inverse of world_light's conversion)."""
    light = jsonfile.read(job_dir / job_files.LIGHTING_JSON)
    return np.asarray(light["radiance_sh_blender_world"], np.float64) * (A_L / np.pi)[:, None]


def load_assets(face: ReconstructedFace, vertices: np.ndarray, job: Job | None = None) -> Assets:
    folder = face.folder
    photo_lighting(str(folder), job)  # made once per reconstruction; returns at once after
    with Image.open(folder / job_files.ALBEDO_FILE) as im:
        albedo = srgb_to_linear(np.asarray(im.convert("RGB")))
    with Image.open(face.rec.path(folder, job_files.FACE_TEXTURE)) as im:
        tex = np.asarray(im.convert("RGB").resize((TEXTURE_SIZE, TEXTURE_SIZE), Image.Resampling.BOX),
                         np.float32) / 255.0
    return Assets(albedo, tex, irradiance_world(folder), ras.face_fade(face.model, vertices))


@dataclass
class Shaded:
    """A raster's albedo (linear, 0 off the face tile) and the photo's irradiance at its proxy and
    detailed normals, (H,W,3) each; ``image(irr)`` the shaded albedo."""

    albedo: np.ndarray
    proxy: np.ndarray
    detail: np.ndarray

    def image(self, irradiance: np.ndarray) -> np.ndarray:
        return self.albedo * irradiance


def irradiance(assets: Assets, normals: np.ndarray) -> np.ndarray:
    """The photo's irradiance at (H,W,3) world normals, clamped at 0 (SH ringing)."""
    return np.clip(sh_lighting.shade(normals.reshape(-1, 3), assets.irradiance_world), 0.0, None).reshape(normals.shape)


def shade(assets: Assets, r: ras.Rasters) -> Shaded:
    """Albedo sampled once, irradiance at both normals, through a raster."""
    alb = np.zeros(r.shape + (3,))
    face = r.face > 0
    alb[face] = sample_tile(assets.albedo, r.uv[face])
    return Shaded(alb, irradiance(assets, r.normal), irradiance(assets, r.detail_normal))


def srgb(x: np.ndarray) -> np.ndarray:
    return linear_to_srgb(np.clip(x, 0.0, 1.0)).astype(np.float32)


def chw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(np.asarray(x, np.float32), -1, 0))


@dataclass
class View:
    target: np.ndarray  # (3,H,W) sRGB
    uv: np.ndarray  # (H,W,2)
    weight: np.ndarray  # (1,H,W)
    shaded_proxy: np.ndarray  # (3,H,W) sRGB
    shaded_detail: np.ndarray
    shading: np.ndarray  # (1,H,W) luminance of the detailed shading, linear
    aug_detail: list[np.ndarray] = field(default_factory=list)
    aug_target: list[np.ndarray] = field(default_factory=list)
    aug_shading: list[np.ndarray] = field(default_factory=list)


@dataclass
class Subject:
    name: str
    texture: np.ndarray  # (3,T,T) sRGB: NTex's input
    views: list[View]
    # the photo's AUs as the reconstruction read them (0..1, in ``au_names`` order): the target of the
    # expression adversarial loss
    aus: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    au_names: tuple[str, ...] = ()


def face_window(r: ras.Rasters, framing: float) -> tuple[float, float, float, float]:
    """A square window (x0, y0, x1, y1) around the face tile's pixels, ``framing`` x its extent."""
    ys, xs = np.nonzero(r.face > 0.05)
    if len(xs) == 0:
        raise ValueError("the face is not seen from this camera")
    cx, cy = (xs.min() + xs.max() + 1) / 2.0, (ys.min() + ys.max() + 1) / 2.0
    half = max(xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) * framing / 2.0
    return cx - half, cy - half, cx + half, cy + half


def crop(photo_lin: np.ndarray, window, size: int) -> np.ndarray:
    """The photo (linear) sampled at the pixel centres of ``window`` at ``size``² (bilinear),
    exactly where :func:`backend.reconstruct.render.cast` casts its rays."""
    x0, y0, x1, y1 = window
    g = (np.arange(size) + 0.5) / size
    px = x0 + g * (x1 - x0) - 0.5
    py = y0 + g * (y1 - y0) - 0.5
    yy, xx = np.meshgrid(py, px, indexing="ij")
    return np.stack([ndimage.map_coordinates(photo_lin[..., c], [yy, xx], order=1, mode="nearest")
                     for c in range(3)], -1)


def fake_detail_maps(face: ReconstructedFace, n: int, seed: int, job: Job | None = None,
                     size: int = ras.TILT_SIZE) -> list[np.ndarray]:
    """``n`` detail maps of random expressions (an EMFACS prototype or a random mix of the rig's
    controls) at random ages and seeds, from the available detail models in turn."""
    job = job or Job()
    rng = np.random.default_rng(seed)
    models = [m for m in registry.models() if m.availability().available]
    presets = list(emotions.preset_controls(face.model, face.rig).values())
    keys = [c["key"] for c in face.rig]
    maps = []
    for i in range(n):
        job.check()
        if rng.random() < 0.6:
            values = dict(presets[rng.integers(len(presets))])
        else:
            values = {k: float(rng.uniform(0.4, 1.0)) for k in rng.choice(keys, size=3, replace=False)}
        years = float(rng.uniform(25, 75))
        maker = models[i % len(models)].open(face, years, int(rng.integers(1 << 30)), job)
        w = emotions.weights_from_controls(face.rig, face.model.expression_names, values)
        maps.append(AUG_GAIN * maker.detail_map(w, size, job))
        job.report((i + 1) / n, f"Fake details {i + 1} of {n}")
    return maps


def make_view(face: ReconstructedFace, vertices, assets: Assets, photo_lin, window, size: int, tilt_x,
              tilts_z) -> View:
    view = ras.ViewCast(face.model, vertices, face.rec.fit.camera, assets.fade, window, (size, size))
    r = view.rasters(tilt_x)
    sh = shade(assets, r)
    target = crop(photo_lin, window, size)
    w = r.face[None].astype(np.float32)
    v = View(chw(srgb(target)), r.uv, w, chw(srgb(sh.image(sh.proxy))), chw(srgb(sh.image(sh.detail))),
             (sh.detail @ LUMA)[None].astype(np.float32))
    for tz in tilts_z:
        irr_z = irradiance(assets, view.rasters(tz).detail_normal)
        ratio = np.where(sh.detail > SHADING_FLOOR, irr_z / np.maximum(sh.detail, SHADING_FLOOR), 1.0)
        v.aug_detail.append(chw(srgb(sh.image(irr_z))))
        v.aug_target.append(chw(srgb(target * np.where(r.face[..., None] > 0, ratio, 1.0))))
        v.aug_shading.append((irr_z @ LUMA)[None].astype(np.float32))
    return v


def prepare(job_dir, n_fake: int = 12, seed: int = 0, size: int = VIEW_SIZE, framings=FRAMINGS,
            job: Job | None = None) -> Subject:
    """The training views of the face in ``job_dir`` (its photo, fit, D(I_x) and lighting)."""
    job = job or Job()
    face = ReconstructedFace.open(job_dir)
    vertices = face.model.shape(face.identity, np.asarray(face.rec.fit.expression, np.float64))
    assets = load_assets(face, vertices, job.child(0.0, 0.3))
    tilt_x = ras.detail_tilt(face.model, vertices, face.photo_detail(job.child(0.3, 0.4)))
    maps = fake_detail_maps(face, n_fake, seed, job.child(0.4, 0.8))
    tilts = [ras.detail_tilt(face.model, vertices, m) for m in maps]
    photo_lin = srgb_to_linear(load_rgb(face.rec.image))
    whole = ras.from_model(face.model, vertices, face.rec.fit.camera, assets.fade)
    views = []
    for k, fr in enumerate(framings):
        views.append(make_view(face, vertices, assets, photo_lin, face_window(whole, fr), size, tilt_x, tilts))
        job.report(0.8 + 0.2 * (k + 1) / len(framings), "Training views")
    names = tuple(sorted(face.rec.aus))
    return Subject(str(job_dir), chw(assets.texture), views,
                   np.asarray([face.rec.aus[a] for a in names], np.float32), names)
