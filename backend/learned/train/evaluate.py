"""Held-out evaluation of DetH and RCAN (issue #6 §4); ``python -m backend eval``.

On the synthetic identities never trained on (seed % 10 == 0), every sample's source map
D(I_x) is moved to its target y three ways: DetH, the physical model (the data's own D(I_y):
the baseline DetH learns from) and "none" (D(I_x) unchanged). Figures:

- ``au``: MAE of the separately trained AU regressor (``aureg.py``) against y, per AU number
  (sides averaged) and overall;
- ``regions``: per anatomical region, Pearson r between the region's wrinkle energy (RMS of the
  map about its regional mean) and the target intensity of the AU that wrinkles it, and the
  mean energy at low (< 0.1) and high (> 0.6) intensity;
- ``outside``: mean |output − D(I_x)| where the physical model changes nothing (|D(I_y) − D(I_x)|
  < 0.02 mm, 3 texels from any change) and where it does, and DetH's mean mask M in both;
- ``l1``, ``l1_moving``: mean |output − D(I_y)| on the face, and where the physical model
  changes the map; ``phase_free``, ``phase_free_moving``: the same for the phase-free distance
  DetH trains on (``nets.wrinkle_features``: low-pass, wrinkle magnitude and direction — where a
  hallucinated crest lies does not count);
- ``rcan``: PSNR / SSIM on the face of RCAN and of bicubic against held-out 1024² maps from
  their 256² reductions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ...detail.stats import face_map_stats
from ...models.emotions import au_rig
from ...models.loader import load_model
from ...models.regions import region_masks
from .. import weights
from ..nets import feature_sigma, wrinkle_features
from ..sr import downsample, upscale
from . import data
from .aureg import NETS, predict
from .deth import TrainConfig
from .rcan import hr_maps, masked_psnr_ssim

# the region each AU wrinkles, from face_regions' docs (their anatomy)
REGION_AUS = {"forehead": (1, 2), "glabella": (4,), "crows_feet": (6,), "nose": (9,), "nasolabial": (12,)}
HELD_OUT_EVERY = 10
CHANGE_MM = 0.02


def _energy(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    on = region > 0.5
    v = maps[:, on]
    return np.sqrt(np.mean((v - v.mean(1, keepdims=True)) ** 2, axis=1))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() < 1e-12 or b.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@torch.no_grad()
def _phase_free(maps: np.ndarray, target: np.ndarray, uv: np.ndarray, moving: np.ndarray,
                batch: int = 16) -> tuple[float, float]:
    """Mean phase-free distance (``wrinkle_features``, 4 channels) on the face and on ``moving``."""
    m = torch.from_numpy(uv.astype(np.float32))[None, None]
    sigma = feature_sigma(uv.shape[0], TrainConfig.feature_sigma)
    face, mov, n_face, n_mov = 0.0, 0.0, 0.0, 0.0
    for s in range(0, len(maps), batch):
        a = torch.from_numpy(np.asarray(maps[s:s + batch], np.float32))[:, None]
        b = torch.from_numpy(np.asarray(target[s:s + batch], np.float32))[:, None]
        mm = m.expand(len(a), -1, -1, -1)
        diff = (wrinkle_features(a, mm, sigma) - wrinkle_features(b, mm, sigma)).abs().mean(1)
        mv = torch.from_numpy(moving[s:s + batch])
        face += float((diff * mm[:, 0]).sum())
        n_face += float(mm[:, 0].sum())
        mov += float(diff[mv].sum())
        n_mov += float(mv.sum())
    return round(face / max(n_face, 1.0), 5), round(mov / max(n_mov, 1.0), 5)


@torch.no_grad()
def deth_outputs(net, d: dict, idx: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    uv = torch.from_numpy(d["mask"].astype(np.float32))[None, None]
    outs, masks = [], []
    k = net.cfg.n_identity
    for s in range(0, len(idx), batch):
        i = idx[s:s + batch]
        n = len(i)
        ident = np.zeros((n, k), np.float32)
        ident[:, :min(k, d["identity"].shape[1])] = d["identity"][i][:, :k]
        o, _, m = net(dx=torch.from_numpy(d["dx"][i].astype(np.float32))[:, None], uv_mask=uv.expand(n, -1, -1, -1),
                      x=torch.from_numpy(d["x"][i]), y=torch.from_numpy(d["y"][i]), identity=torch.from_numpy(ident),
                      faceid=torch.zeros(n, net.cfg.faceid_dim), has_faceid=torch.zeros(n, 1),
                      age=torch.from_numpy(d["age"][i].astype(np.float32))[:, None])
        outs.append(o[:, 0].numpy())
        masks.append(m[:, 0].numpy())
    return np.concatenate(outs), np.concatenate(masks)


def evaluate(data_dir: str, hr_dir: str | None = None, weights_folder=None, log=print) -> dict:
    d = data.load_shards(sorted(Path(data_dir).glob("synth_*.npz")))
    held = np.flatnonzero(d["seed"] % HELD_OUT_EVERY == 0)
    if not len(held):
        raise ValueError(f"no held-out identities (seed % {HELD_OUT_EVERY} == 0) in {data_dir}")
    log(f"{len(held)} held-out samples")
    deth, deth_meta = weights.load("deth", weights_folder)
    aureg, _ = weights.load("aureg", weights_folder, nets=NETS)
    dx = d["dx"][held].astype(np.float32)
    dy = d["dy"][held].astype(np.float32)
    y = d["y"][held]
    out, mmask = deth_outputs(deth, d, held)
    methods = {"deth": out, "physical": dy, "none": dx}
    uv = d["mask"]
    on = uv > 0.5
    figures: dict = {"held_out_samples": int(len(held)), "deth": deth_meta["info"].get("name")}

    model = load_model()
    rig = au_rig(model)
    au_of = np.array([c["au"] for c in rig])
    aus = sorted(set(au_of.tolist()))
    au_fig = {}
    for name, maps in methods.items():
        err = np.abs(predict(aureg, maps, uv) - y)
        au_fig[name] = {"mae_all": round(float(err.mean()), 4),
                        "mae_active": round(float(err[y > 0.2].mean()), 4),
                        "per_au": {f"AU{a}": round(float(err[:, au_of == a].mean()), 4) for a in aus}}
    figures["au"] = au_fig

    regions = region_masks(model, uv.shape[0], names=list(REGION_AUS))
    reg_fig = {}
    for r, r_aus in REGION_AUS.items():
        t = y[:, np.isin(au_of, r_aus)].mean(1)
        row = {"aus": [f"AU{a}" for a in r_aus], "samples_high": int((t > 0.6).sum())}
        for name, maps in methods.items():
            e = _energy(maps, regions[r] * uv)
            row[name] = {"r": round(_pearson(e, t), 3),
                         "low_mm": round(float(e[t < 0.1].mean()), 4) if (t < 0.1).any() else None,
                         "high_mm": round(float(e[t > 0.6].mean()), 4) if (t > 0.6).any() else None}
        reg_fig[r] = row
    figures["regions"] = reg_fig

    changed = np.abs(dy - dx) > CHANGE_MM
    near = np.stack([ndimage.binary_dilation(c, iterations=3) for c in changed])
    still = ~near & on
    moving = changed & on
    figures["outside"] = {
        name: {"still_mm": round(float(np.abs(m - dx)[still].mean()), 5),
               "moving_mm": round(float(np.abs(m - dx)[moving].mean()), 5)} for name, m in methods.items()}
    figures["outside"]["deth_mask"] = {"still": round(float(mmask[still].mean()), 4),
                                       "moving": round(float(mmask[moving].mean()), 4)}
    figures["l1"] = {name: round(float(np.abs(m - dy)[:, on].mean()), 5) for name, m in methods.items()}
    figures["l1_moving"] = {name: round(float(np.abs(m - dy)[moving].mean()), 5) for name, m in methods.items()}
    pf = {name: _phase_free(m, dy, uv, moving) for name, m in methods.items()}
    figures["phase_free"] = {name: v[0] for name, v in pf.items()}
    figures["phase_free_moving"] = {name: v[1] for name, v in pf.items()}

    if hr_dir:
        figures["rcan"] = evaluate_rcan(hr_dir, weights_folder, log)
    return figures


NEAR_MM, NEAR_TEXELS = 0.02, 8  # "near creases": within 8 texels (2.3 mm at 1024²) of relief deeper than 0.02 mm


def evaluate_rcan(hr_dir: str, weights_folder=None, log=print) -> dict:
    import torch.nn.functional as F

    hd = data.load_shards(sorted(Path(hr_dir).glob("synth_*.npz")))
    maps, seeds = hr_maps(hd)
    test = maps[seeds % HELD_OUT_EVERY == 0]
    if not len(test):
        raise ValueError(f"no held-out 1024² maps in {hr_dir}")
    rcan, meta = weights.load("rcan", weights_folder)
    model = load_model()
    rows = {"rcan": [], "bicubic": []}
    creases = {"rcan": [], "bicubic": []}
    near_psnr = {"rcan": [], "bicubic": []}
    far_rms = {"rcan": [], "bicubic": []}
    on_empty = {"rcan": [], "bicubic": []}
    face = hd["mask"] > 0.5
    for hr in test:
        lr = downsample(hr)
        pred = upscale(rcan, lr)
        bic = F.interpolate(torch.from_numpy(lr)[None, None], scale_factor=4, mode="bicubic",
                            align_corners=False)[0, 0].numpy()  # the same bicubic RCAN adds its residual to
        if not np.ptp(hr[face]):
            # a map without relief (a neutral face's creases): PSNR has no peak there, so such maps
            # are left out of it and reported by what a method puts on them
            for k, m in (("rcan", pred), ("bicubic", bic)):
                on_empty[k].append(float(np.abs(m[face]).max()))
            continue
        rows["rcan"].append(masked_psnr_ssim(pred, hr, hd["mask"]))
        rows["bicubic"].append(masked_psnr_ssim(bic, hr, hd["mask"]))
        # PSNR where the map has relief (within NEAR_TEXELS of texels deeper than NEAR_MM), the
        # peak its range on the face: on maps of creases alone the whole-face figure is set by
        # sub-micron noise on empty skin (and is undefined on a map without creases)
        near = ndimage.binary_dilation(np.abs(hr) > NEAR_MM, iterations=NEAR_TEXELS) & face
        if near.any():
            peak = float(hr[face].max() - hr[face].min())
            far = face & ~near
            for k, m in (("rcan", pred), ("bicubic", bic)):
                near_psnr[k].append(10.0 * np.log10(peak ** 2 / max(float(np.mean((m - hr)[near] ** 2)), 1e-20)))
                far_rms[k].append(float(np.sqrt(np.mean((m - hr)[far] ** 2))))
        ref = face_map_stats(model, hr)
        for k, m in (("rcan", pred), ("bicubic", bic)):
            creases[k].append(crease_errors(ref, face_map_stats(model, m)))
    log(f"RCAN on {len(test)} held-out 1024² maps")
    out = {"maps": int(len(test)), "maps_without_relief": len(on_empty["rcan"]),
           "name": meta["info"].get("name")}
    for k, v in rows.items():
        widths = [e for c in creases[k] for e in c["width"]]
        depths = [e for c in creases[k] for e in c["depth"]]
        found = [f for c in creases[k] for f in c["found"]]
        out[k] = {"psnr_db": round(float(np.mean([p for p, _ in v])), 2),
                  "psnr_near_creases_db": round(float(np.mean(near_psnr[k])), 2) if near_psnr[k] else None,
                  "maps_with_creases": len(near_psnr[k]),
                  # the residue a net leaves on skin away from them (µm): what sets the whole-face
                  # PSNR of maps of creases alone
                  "rms_away_from_creases_um": round(1000.0 * float(np.mean(far_rms[k])), 3) if far_rms[k] else None,
                  "ssim": round(float(np.mean([s for _, s in v])), 4),
                  # the largest relief a method puts on maps that have none (µm)
                  "max_on_maps_without_relief_um": round(1000.0 * max(on_empty[k]), 4) if on_empty[k] else None,
                  # per region with creases in the reference: |median width − reference's| (mm), the
                  # same for depth, and the share of those regions where creases are found at all
                  "crease_width_error_mm": round(float(np.mean(widths)), 3) if widths else None,
                  "crease_depth_error_mm": round(float(np.mean(depths)), 3) if depths else None,
                  "crease_regions_found": round(float(np.mean(found)), 3) if found else None}
    return out


def crease_errors(ref, got) -> dict:
    """Per region where ``ref`` (wrinkle statistics) has creases: whether ``got`` has some, and the
    absolute differences of their median width and depth (mm) where it does."""
    out = {"width": [], "depth": [], "found": []}
    for name, r in ref.regions.items():
        if name == "elsewhere" or not r.count:
            continue
        g = got.regions[name]
        out["found"].append(1.0 if g.count else 0.0)
        if g.count:
            out["width"].append(abs(g.width_mm - r.width_mm))
            out["depth"].append(abs(g.depth_mm - r.depth_mm))
    return out
