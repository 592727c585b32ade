"""Figures of the neural renderer on one person (``python -m backend neural-eval``; docs/neural_render.md).

1. **Input view**: the renderer's image against the photo, PSNR and SSIM (scikit-image) on the face
   tile's pixels (fade > 0.5) of the tightest training framing. This is the view it was trained on:
   a measure of fit, not of generalisation (there is one photo).
2. **Detail fidelity, the paper's ablation** (FaceDet3D Fig. 8 / Table 2): three renderers trained
   alike but for the losses and the branches — double branch with AugW + DSL, double branch with the
   photometric loss only, single branch with AugW + DSL — are given detail maps none of them saw
   (other seeds, ages and expressions). Two readings, on the face's pixels:
   - *transfer*: correlation of the change the map makes to the render (render with the map minus
     render with the photo's own detail, luminance) with the change it makes to the re-shaded
     photo (Eq. 14's I*_x minus I_x);
   - *DSL reader*: correlation of an evaluation reader's shading, read off the render, with the
     true detailed shading, in the detail band (minus a Gaussian of ``BAND_SIGMA`` pixels). The
     reader (the paper's two-convolution f) is trained once on the true pairs of the training
     maps, by none of the variants, so all three are read by the same eyes.
3. **Identity across expressions**: the seven EMFACS prototypes (shape keys at the preset's
   weights, the physical model's map for it), rendered through the photo's camera; the face tile
   by the renderer, and, for comparison, by ordinary rendering (albedo x the photo's SH shading,
   FaceDet3D's "ordinary rendering"), both over the same backend render of the rest of the head.
   dlib's 128-D descriptor distance to the photo's (one person: < 0.6).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.metrics import structural_similarity

from ...core.image_io import load_rgb
from ...core.imaging import LUMA, srgb_to_linear
from ...detail import registry
from ...detail.face import ReconstructedFace
from ...geometry import sh_lighting
from ...models import emotions
from ...reconstruct.render import render as plain_render
from ...reconstruct.scene_export import MODEL_TO_BLENDER
from ...vision.landmarks import face_embedding
from ..neural import frame
from ..neural import rasters as ras
from ..neural.nets import NeuralConfig, ShadingReader, laplacian_pyramid_loss
from ..neural.subject import chw, load_assets, prepare, shade, srgb
from ..neural.training import Draw, NeuralTrainConfig, blend, train

BAND_SIGMA = 4.0  # pixels: the detail band of the reader's shading
FACE_WEIGHT = 0.5  # pixels whose face-tile fade is above this are "face pixels"
# id -> (what it is, training overrides). "no skip": g_omega without its residual skip (nets.Tex2Im),
# the paper's plain branches, where the details can only come from what the losses teach.
VARIANTS = {
    "full": ("double branch, AugW + DSL", {}),
    "photometric": ("double branch, photometric only", {"augw": 0.0, "dsl": 0.0}),
    "single": ("single branch, AugW + DSL", {"single_branch": True}),
    "noskip": ("double branch, no skip, AugW + DSL", {"residual": False}),
    "noskip-photometric": ("double branch, no skip, photometric only", {"residual": False, "augw": 0.0, "dsl": 0.0}),
}
NET_FIELDS = ("single_branch", "residual")


def say(message: str) -> None:
    print(message, flush=True)  # a long run's log is read while it runs


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-12))


def _band(x: np.ndarray) -> np.ndarray:
    return x - ndimage.gaussian_filter(x, BAND_SIGMA)


def _luma(chw_img: np.ndarray) -> np.ndarray:
    return np.tensordot(LUMA, srgb_to_linear(np.clip(chw_img, 0, 1)), axes=(0, 0))


def train_reader(subject, steps: int = 400, seed: int = 0) -> ShadingReader:
    """The evaluation's DSL reader, on the true pairs of ``subject`` only."""
    torch.manual_seed(seed)
    f = ShadingReader()
    opt = torch.optim.Adam(f.parameters(), 2e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        d = Draw(subject, rng, "cpu")
        pairs = [(d.target, d.shading)] + ([d.aug[1:]] if d.aug is not None else [])
        loss = sum(laplacian_pyramid_loss(blend(f(img), s, d.w), s) for img, s in pairs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return f.eval()


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).unsqueeze(0)


def _render(R, subject, v, detail):
    with torch.no_grad():
        ntm = R.neural_texture(_t(subject.texture))
        img, _ = R.tex2im(ntm, _t(v.uv), _t(v.shaded_proxy), _t(detail), (_t(v.weight) > 0).float())
    return img[0].numpy()


def detail_fidelity(R, reader, subject, held) -> dict:
    """Transfer and reader correlations over the held-out maps of ``held`` (a Subject whose views
    carry maps R never saw)."""
    transfer, read = [], []
    for v in held.views:
        m = v.weight[0] > FACE_WEIGHT
        base = _render(R, subject, v, v.shaded_detail)
        for sd_z, tz, shz in zip(v.aug_detail, v.aug_target, v.aug_shading):
            out = _render(R, subject, v, sd_z)
            transfer.append(_corr((_luma(out) - _luma(base))[m], (_luma(tz) - _luma(v.target))[m]))
            with torch.no_grad():
                s = reader(_t(out))[0, 0].numpy()
            read.append(_corr(_band(s)[m], _band(shz[0])[m]))
    return {"transfer_corr": round(float(np.mean(transfer)), 3), "reader_detail_corr": round(float(np.mean(read)), 3),
            "maps": len(transfer)}


def image_metrics(out: np.ndarray, target: np.ndarray, m: np.ndarray) -> dict:
    """PSNR and SSIM of (H,W,3) sRGB images on the pixels ``m``."""
    mse = float(((out[m] - target[m]) ** 2).mean())
    ssim = structural_similarity(target, out, channel_axis=2, data_range=1.0, full=True)[1].mean(-1)
    return {"psnr_db": round(10 * np.log10(1 / max(mse, 1e-12)), 2), "ssim": round(float(ssim[m].mean()), 4),
            "face_pixels": int(m.sum())}


def input_view(R, subject) -> dict:
    """The renderer's image and ordinary rendering (its shaded-albedo input) against the photo."""
    v = subject.views[0]
    m = v.weight[0] > FACE_WEIGHT
    target = np.moveaxis(v.target, 0, -1)
    out = np.moveaxis(np.clip(_render(R, subject, v, v.shaded_detail), 0, 1), 0, -1)
    return {"neural": image_metrics(out, target, m),
            "ordinary": image_metrics(np.moveaxis(v.shaded_detail, 0, -1), target, m)}


def identity(job_dir, R, out_dir: Path | None = None, log=say) -> dict:
    """dlib descriptor distance to the photo for the EMFACS prototypes: neural vs ordinary rendering."""
    face = ReconstructedFace.open(job_dir)
    model, cam = face.model, face.rec.fit.camera
    photo = load_rgb(face.rec.image)
    ref = face_embedding(photo)
    if ref is None:
        raise ValueError("dlib finds no face in the photo: no identity reference")
    v0 = model.shape(face.identity, np.asarray(face.rec.fit.expression, np.float64))
    assets = load_assets(face, v0)
    with Image.open(face.folder / "head_albedo.png") as im:
        head = srgb_to_linear(np.asarray(im.convert("RGB")))
    sh_model = sh_lighting.in_frame(assets.irradiance_world, MODEL_TO_BLENDER)  # render.render's frame
    loaded = frame.Loaded(R, assets, R.neural_texture(_t(chw(assets.texture))), {}, ())
    maker = registry.get("physical").open(face, face.years(), 0, None)
    presets = emotions.preset_controls(model, face.rig)
    rows, strip = {}, []
    for name, values in presets.items():
        w = emotions.weights_from_controls(face.rig, model.expression_names, values)
        v = model.shape(face.identity, w)
        tilt = ras.detail_tilt(model, v, maker.detail_map(w, ras.TILT_SIZE, None))
        r = ras.from_model(model, v, cam, assets.fade, tilt)
        base = plain_render(model, v, cam, tiles={0: assets.albedo, 1: head}, sh=sh_model).image.astype(np.float64) / 255
        sh = shade(assets, r)
        a = r.face[..., None]
        ordinary = base * (1 - a) + srgb(sh.image(sh.detail)) * a
        with torch.no_grad():
            rgba = frame.render(loaded, r)
        neural = base * (1 - a) + rgba[..., :3] * a
        row = {}
        for kind, img in (("ordinary", ordinary), ("neural", neural)):
            e = face_embedding((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))
            row[kind] = None if e is None else round(float(np.linalg.norm(e - ref)), 3)
        rows[name] = row
        log(f"identity {name}: {row}")
        strip.append(np.concatenate([ordinary, neural], 0))
    if out_dir is not None:
        Image.fromarray((np.clip(np.concatenate(strip, 1), 0, 1) * 255 + 0.5).astype(np.uint8)).save(
            out_dir / "identity_strip.png")

    def mean(kind):
        vals = [r[kind] for r in rows.values() if r[kind] is not None]
        return round(float(np.mean(vals)), 3) if vals else None
    return {"per_expression": rows, "mean_neural": mean("neural"), "mean_ordinary": mean("ordinary"),
            "threshold": 0.6}


def evaluate(job_dir, out_dir, steps: int = NeuralTrainConfig.steps, variants=None, with_identity: bool = True,
             log=say) -> dict:
    """``variants``: ids of :data:`VARIANTS` (default all); the identity figures use the first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subject = prepare(job_dir, seed=0)
    held = prepare(job_dir, n_fake=6, seed=1000, framings=(1.0,))
    log(f"prepared the views and the held-out maps in {time.perf_counter() - t0:.0f} s")
    reader = train_reader(subject)
    figures: dict = {"steps": steps, "variants": {}}
    full = None
    for vid in variants or list(VARIANTS):
        name, over = VARIANTS[vid]
        net = replace(NeuralConfig(), **{k: v for k, v in over.items() if k in NET_FIELDS})
        cfg = NeuralTrainConfig(steps=steps, net=net, **{k: v for k, v in over.items() if k not in NET_FIELDS})
        t1 = time.perf_counter()
        R, _, last = train([subject], cfg, log=lambda *_: None)
        row = {"train_s": round(time.perf_counter() - t1, 1), "input_view": input_view(R, subject),
               **detail_fidelity(R, reader, subject, held)}
        figures["variants"][vid] = {"what": name, **row}
        log(f"{name}: {row}")
        if full is None:
            full = R
    if with_identity:
        figures["identity"] = identity(job_dir, full, out, log)
    (out / "neural_eval.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return figures
