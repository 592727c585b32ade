"""The neural image of a frame (backend method ``neural_frame``): a person's trained renderer
(``neural/renderer.safetensors`` in the job folder) applied to the rasters of one view.

The image is RGBA, straight alpha: RGB the render (sRGB), alpha the face tile's fade times
coverage (:mod:`.rasters`), so a compositor's Alpha Over lays it on the Cycles render with no
seam. The neural texture depends only on the photo, so it is computed once per loaded renderer;
a frame then costs the shading of its rasters and one pass of Tex2Im.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from protocol import jsonfile
from protocol import job as job_files

from ...core.errors import BadRequestError
from ...core.image_io import save_png
from ...core.progress import Job
from ...detail.face import ReconstructedFace
from .. import weights as weights_io
from .nets import NeuralConfig, NeuralRenderer
from . import rasters as ras
from .subject import Assets, chw, load_assets, shade, srgb

NETS = {"neural": (NeuralRenderer, NeuralConfig)}


@dataclass
class Loaded:
    renderer: NeuralRenderer
    assets: Assets
    ntm: list[torch.Tensor]  # NTex's texture grids: made once, the photo does not change
    info: dict
    key: tuple


MAX_LOADED = 4  # renderers kept per backend process (each holds its albedo tile: ~50 MB)
_cache: dict[str, Loaded] = {}
_lock = threading.Lock()


def weights_folder(job_dir) -> Path:
    return Path(job_dir) / job_files.NEURAL_DIR


def trained(job_dir) -> bool:
    return weights_io.available("neural", weights_folder(job_dir))


def load(job_dir, job: Job | None = None) -> Loaded:
    """The job's renderer with its assets and neural texture, kept while its file is unchanged."""
    folder = weights_folder(job_dir)
    path = weights_io.path_for("neural", folder)
    if not path.is_file():
        raise BadRequestError(f"no neural renderer has been trained for the face in {job_dir}",
                              "Train it first (Neural Pass in the panel, or the neural_train method).")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _lock:
        hit = _cache.get(str(job_dir))
        if hit is not None and hit.key == key:
            return hit
    net, meta = weights_io.load("neural", folder, nets=NETS)
    face = ReconstructedFace.open(job_dir)
    vertices = face.model.shape(face.identity, np.asarray(face.rec.fit.expression, np.float64))
    assets = load_assets(face, vertices, job)
    with torch.no_grad():
        ntm = net.neural_texture(torch.from_numpy(chw(assets.texture)).unsqueeze(0))
    loaded = Loaded(net, assets, ntm, meta["info"], key)
    with _lock:
        _cache.pop(str(job_dir), None)
        _cache[str(job_dir)] = loaded
        while len(_cache) > MAX_LOADED:  # the oldest goes
            _cache.pop(next(iter(_cache)))
    return loaded


def render(loaded: Loaded, r: ras.Rasters) -> np.ndarray:
    """(H, W, 4) float32 straight-alpha RGBA (sRGB) of the rasters ``r``."""
    sh = shade(loaded.assets, r)
    face = r.face > 0

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).unsqueeze(0)

    with torch.no_grad():
        img, _ = loaded.renderer.tex2im(loaded.ntm, t(r.uv), t(chw(srgb(sh.image(sh.proxy)))), t(chw(srgb(sh.image(sh.detail)))),
                                        t(face[None].astype(np.float32)))
    rgb = np.clip(np.moveaxis(img[0].numpy(), 0, -1), 0.0, 1.0)
    rgb[~face] = 0.0
    return np.concatenate([rgb, r.face[..., None]], -1).astype(np.float32)


def neural_frame(job_dir: str, rasters_path: str, out_path: str, job: Job | None = None) -> dict:
    """Read Blender's raster render at ``rasters_path``, write the neural image to ``out_path``
    (PNG, RGBA), atomically: a failed frame leaves the last good image in place."""
    job = job or Job()
    t0 = time.perf_counter()
    loaded = load(job_dir, job)
    r = ras.from_blender_exr(rasters_path, loaded.assets.fade)
    job.check()
    rgba = render(loaded, r)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(out, (rgba * 255 + 0.5).astype(np.uint8))  # atomic
    stats = {"seconds": round(time.perf_counter() - t0, 3), "face_pixels": int((r.face > 0).sum()),
             "size": list(r.shape)}
    return {"image": str(out.resolve()), "stats": stats}


def info(job_dir) -> dict:
    """The trained renderer's side file (what it was trained on, its losses, how long)."""
    try:
        return jsonfile.read(weights_folder(job_dir) / job_files.NEURAL_INFO)
    except (OSError, ValueError):
        return {}
