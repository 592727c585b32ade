"""The photo's light, separated: albedo tiles and a Blender world (``photo_lighting`` method).

Writes into the job folder ``albedo.png`` (face tile) and ``head_albedo.png`` (head tile), the
photo's colour with its SH lighting divided out (:mod:`.albedo`), and the lighting as a world:
``lighting_env.exr`` (equirectangular radiance, :mod:`.world_light`) with ``lighting.json`` (the
SH coefficients in both frames, a stamp of what they were made from). Made once per
reconstruction: a request whose stamp matches returns the files as they are.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from protocol import jsonfile
from protocol import job as job_files

from ...core import exr_io
from ...core.image_io import load_rgb, save_png
from ...core.progress import Job
from ..face import ReconstructedFace
from .albedo import albedo_tile, headroom
from .extract import METHOD_VERSION as DETAIL_METHOD
from .extract import extract_photo_detail
from .world_light import environment, toward_camera, world_radiance_sh

METHOD_VERSION = 4  # 2: light from behind the head neutral; 3: albedo headroom; 4: the front light's colour behind
LIGHTING_SIZE = 512  # the lighting fit's working tile: 27 coefficients need no more


def photo_lighting(job_dir: str, job: Job | None = None) -> dict:
    job = job or Job()
    face = ReconstructedFace.open(job_dir)
    rec, model, folder = face.rec, face.model, Path(job_dir)
    stamp = {"source": rec.source_key(), "method": METHOD_VERSION, "detail_method": DETAIL_METHOD}
    lighting = folder / job_files.LIGHTING_JSON
    files = {"albedo": job_files.ALBEDO_FILE, "head_albedo": job_files.HEAD_ALBEDO_FILE,
             "lighting": job_files.LIGHTING_JSON, "environment": job_files.LIGHTING_ENV}
    try:
        old = jsonfile.read(lighting)
        if old.get("stamp") == stamp and all((folder / f).is_file() for f in files.values()):
            job.report(1.0, "The photo's lighting was already separated")
            return {"job_dir": str(folder.resolve()), "files": files, "stats": old.get("stats", {})}
    except (OSError, ValueError):
        pass
    t0 = time.perf_counter()
    photo = load_rgb(rec.image)
    job.report(0.0, "Fitting the photo's lighting")
    light = extract_photo_detail(model, rec, photo, size=LIGHTING_SIZE, job=job.child(0.0, 0.4))
    vertices = model.shape(np.asarray(rec.fit.identity, np.float64), np.asarray(rec.fit.expression, np.float64))
    sizes = {}
    for role in (job_files.FACE_TEXTURE, job_files.HEAD_TEXTURE):
        with Image.open(folder / rec.files[role]) as im:  # the tile sizes the reconstruction chose
            sizes[role] = im.size[0]
    job.report(0.45, "Dividing the light out of the face tile")
    face_tile = albedo_tile(model, vertices, rec.fit.camera, photo, light.sh, tuple(model.regions["face"][1]), 0,
                            sizes[job_files.FACE_TEXTURE], job.child(0.45, 0.8))
    job.report(0.8, "Dividing the light out of the head tile")
    head_tile = albedo_tile(model, vertices, rec.fit.camera, photo, light.sh, tuple(model.regions["head_neck"][1]),
                            1, sizes[job_files.HEAD_TEXTURE], job.child(0.8, 0.92))
    k = headroom(face_tile)  # albedo / k, light x k: the same photo, no clipped albedo
    radiance = world_radiance_sh(light.sh, rec.fit.camera) * k
    env = environment(radiance, toward_camera=toward_camera(rec.fit.camera, vertices[: model.regions["face"][0][1]].mean(0)))
    job.check()
    save_png(folder / files["albedo"], face_tile.rgb(k))
    save_png(folder / files["head_albedo"], head_tile.rgb(k))
    exr_io.write_channels(folder / files["environment"], [env[..., 0], env[..., 1], env[..., 2]], unit="radiance")
    stats = {"face": face_tile.stats, "head": head_tile.stats, "lighting_residual": light.stats["lighting_residual"],
             "albedo_scale": round(k, 4),
             "seconds": round(time.perf_counter() - t0, 2)}
    jsonfile.write_atomic(lighting, {"stamp": stamp, "sh_camera_facing": np.round(light.sh, 6).tolist(),
                                     "radiance_sh_blender_world": np.round(radiance, 6).tolist(), "stats": stats})
    job.report(1.0, "The photo's lighting separated")
    return {"job_dir": str(folder.resolve()), "files": files, "stats": stats}
