"""Photo -> reconstructed, textured face, written into a job folder.

Stages, each reading and extending :class:`FaceReconstruction`:
  detect (dlib) -> fit (landmark reprojection) -> texture (UV projection) -> export.

Outputs in ``out_dir`` (see docs/architecture.md):
  face.json, mesh.npz, texture.png, texture_mask.png, head_texture.png, scene.json
Files are written under temporary names and renamed, so a failed or cancelled job never
leaves a file that looks complete; ``face.json`` is written last.
"""

from __future__ import annotations


import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from protocol import job as job_files
from protocol.job import FaceReconstruction

from ..core.errors import BadImageError
from ..core.files import sha256_file
from ..core.image_io import load_rgb, save_png
from ..core.imaging import LUMA, srgb_to_linear
from ..core.progress import Job
from ..models import facs
from ..models.loader import load_model
from ..vision import age, landmarks
from . import au_readout, fitting, scene_export, skin_material, texture
from .mesh_file import write_mesh

DEFAULT_OPTIONS = {
    "texture_size": 2048,
    "head_texture_size": 1024,
    "n_identity": 50,
    "render_long_side": 1024,
}


# Below this face width (pixels) the photo holds too little skin detail for D(I_x) and the texture
# (about 0.4 px per mm of face); the job still runs, with a warning. A choice: dlib's HOG finds
# faces down to ~40 px after its upsampling, and at 60 px pores and fine lines are sub-pixel.
SMALL_FACE_PX = 60


def detection_warnings(det) -> list[str]:
    """What the user should know about the face the job used: which of several, and a small one."""
    out = []
    if det.faces_found > 1:
        box = ", ".join(f"{v:.0f}" for v in det.box)
        if det.chosen < 0:
            out.append(f"{det.faces_found} faces found; none overlaps the box given, so the box itself was used "
                       f"({box})")
        else:
            which = "the largest" if det.chosen_by == "largest" else f"by its {det.chosen_by}, as asked"
            out.append(f"{det.faces_found} faces found; used face {det.chosen} from the left ({which}, box {box}): "
                       "choose another by number or box (--face)")
    # the 68 landmarks' extent, not the box: detectors draw boxes of their own sizes (MediaPipe's
    # is ~12 % wider than dlib's on the same face), the jaw-to-jaw span is the face's
    width = float(np.ptp(det.points[:, 0]))
    if width < SMALL_FACE_PX:
        out.append(f"the face is only {width:.0f} px wide: its texture and the person's own skin detail will be "
                   "poor; use a larger photo or a closer crop")
    return out


def iris_color(image: np.ndarray, points: np.ndarray) -> list[float] | None:
    """Median colour of the darkest pixels inside both eye outlines (linear RGB), or None."""
    cols = []
    h, w = image.shape[:2]
    for lo in (36, 42):
        eye = points[lo:lo + 6]
        c = eye.mean(0)
        r = max(1.0, 0.18 * np.linalg.norm(eye[3] - eye[0]))
        y0, y1 = int(max(c[1] - r, 0)), int(min(c[1] + r + 1, h))
        x0, x1 = int(max(c[0] - r, 0)), int(min(c[0] + r + 1, w))
        patch = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64) / 255.0
        if len(patch) < 4:
            continue
        lum = patch @ LUMA
        cols.append(patch[lum <= np.median(lum)])
    if not cols:
        return None
    return [float(c) for c in srgb_to_linear(np.median(np.concatenate(cols), axis=0))]


def _write_geometry(model, rec: FaceReconstruction, neutral: np.ndarray, expression: np.ndarray,
                    photo: np.ndarray, out: Path, render_long_side: int) -> dict[str, str]:
    """The job's mesh, scene description and skin surface map; returns their job-file roles."""
    write_mesh(model, neutral, out / job_files.MESH_FILE, iris_color(photo, rec.detection.points))
    scene = scene_export.scene_description(model, rec.fit.camera, expression, neutral, render_long_side)
    scene.save(out / job_files.SCENE_FILE)
    save_png(out / job_files.SKIN_SURFACE_FILE, skin_material.surface_map(model))
    return {"mesh": job_files.MESH_FILE, "scene": job_files.SCENE_FILE,
            job_files.SKIN_SURFACE: job_files.SKIN_SURFACE_FILE}


def reconstruct(image: str, out_dir: str, model_dir: str | None = None, job: Job | None = None,
                options: dict | None = None) -> dict:
    """Run every stage; returns a summary with the job folder and the main figures."""
    job = job or Job()
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    out = Path(out_dir)
    timings: dict[str, float] = {}

    def timed(name, fn, *a, **k):
        t0 = time.perf_counter()
        r = fn(*a, **k)
        timings[name] = round(time.perf_counter() - t0, 3)
        return r

    job.stage(0.0, 0.05).report(0.0, "Loading model and photo")
    model = timed("model", load_model, model_dir, None, job)  # a BFM file converts on first use
    photo = timed("image", load_rgb, image)
    h, w = photo.shape[:2]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadImageError(f"Cannot create the output folder {out} ({exc}).",
                            "Choose a folder you can write to.") from exc
    rec = FaceReconstruction(image=str(Path(image).resolve()), image_size=[w, h], model=model.name,
                             model_dir=str(model.source),
                             photo_sha256=sha256_file(image))

    job.stage(0.05, 0.25).report(0.0, "Detecting face and landmarks")
    rec.detection = timed("detect", landmarks.detect_face, photo, job, opts.get("face"))
    rec.age = timed("age", age.estimate_age, photo, rec.detection, opts.get("age"))

    job.stage(0.25, 0.55).report(0.0, "Fitting the face model")
    rec.fit = timed("fit", fitting.fit_model, model, rec.detection, (w, h), job,
                    n_identity=int(opts["n_identity"]))
    expression = np.asarray(rec.fit.expression, np.float64)
    rec.aus, aus_from = au_readout.read_aus(model, rec.fit, rec.detection)
    rec.au_sd = au_readout.au_sd(model, rec.fit.expression_sd)
    identity = np.asarray(rec.fit.identity, np.float64)
    neutral = model.shape(identity)  # what the mesh basis is: identity, no expression
    posed = model.shape(identity, expression)  # what the photo shows

    job.stage(0.55, 0.85).report(0.0, "Projecting the photo onto the face")
    face_tex = timed("texture", texture.project_texture, model, posed, rec.fit.camera, photo,
                     model.regions["face"][1], 0, int(opts["texture_size"]), job)
    # The PNGs encode in a worker thread (zlib and Pillow's encoder let go of the GIL) while the
    # head tile is projected and the mesh written: ~0.4 s of a 2048² face tile off the wall time.
    # (Projecting the head tile beside the face tile instead was slower: 3.6 against 3.2 s a
    # reconstruct, measured; the face tile's OpenCV steps already use both cores.)
    with ThreadPoolExecutor(max_workers=1) as writer:
        face_files = writer.submit(texture.save_texture, face_tex, out, job_files.FACE_TEXTURE)
        job.stage(0.85, 0.92).report(0.0, "Projecting the photo onto head and neck")
        head_tex = timed("head_texture", texture.project_texture, model, posed, rec.fit.camera, photo,
                         model.regions["head_neck"][1], 1, int(opts["head_texture_size"]), job)
        head_files = writer.submit(texture.save_texture, head_tex, out, job_files.HEAD_TEXTURE)
        job.stage(0.92, 1.0).report(0.0, "Writing results")
        rec.files.update(timed("write", _write_geometry, model, rec, neutral, expression, photo, out,
                               int(opts["render_long_side"])))
        rec.files.update(face_files.result())  # a failed write raises here, before face.json
        rec.files.update(head_files.result())
    rec.stats = {"timings_s": timings, "texture_coverage": face_tex.coverage, "aus_from": aus_from,
                 "aus_fit": facs.aus_from_weights(model, expression),
                 "fit_error_iod": rec.fit.error_iod, "fit_error_px": rec.fit.error_px,
                 "warnings": detection_warnings(rec.detection)}
    job.check()  # a cancel during writing still leaves no face.json
    rec.save(out)
    job.report(1.0, "Done")
    return {"job_dir": str(out.resolve()), "face": job_files.FACE_JSON, "aus": rec.aus, "stats": rec.stats,
            "n_vertices": model.n_vertices, "warnings": rec.stats["warnings"]}
