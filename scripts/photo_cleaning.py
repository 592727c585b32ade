"""What the photo-detail cleaning drops and keeps, measured on the bundled photo (docs/detail_maps.md).

    .venv-backend/bin/python scripts/photo_cleaning.py out/demo/astronaut_job [docs/photo_cleaning.png]

Paints each kind of mark that is not relief onto the photo (tests/backend/paint_marks.py), makes
D(I_x) of the clean and the painted photo with the cleaning and without it (the marks' tests
replaced by "nothing found"; the specular test, older than the cleaning, stays in both), and
prints per kind the RMS change of the map on the mark (+1 mm) -- what the mark printed into the
relief -- and the clean map's own RMS there (a mark hides the relief under it; the cleaning
fills it smoothly, so this is about what a perfect cleaning still changes). Then the crease
statistics of D(I_x) of the clean photo with and without the cleaning: what it keeps. Last, the
figures behind the marks' thresholds (``thresholds``; marks.py cites them).
With a second argument, a figure: painted photo (all kinds), D(I_x) without and with the
cleaning, and the clean photo's D(I_x).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "backend")]

from paint_marks import KINDS, marks_in_uv, paint  # noqa: E402

from backend.core.image_io import load_rgb  # noqa: E402
from backend.detail import stats  # noqa: E402
from backend.detail.photo import extract, shading  # noqa: E402
from backend.models.loader import load_model  # noqa: E402
from protocol.job import FaceReconstruction  # noqa: E402

SIZE = 1024


@contextmanager
def no_cleaning():
    """The marks' tests answer 'nothing here' (the specular test stays)."""
    cm, sm = extract.colour_marks, shading.marks.spot_marks
    extract.colour_marks = lambda rgb, *a, **k: (np.zeros(rgb.shape[:2], np.float32), {})
    shading.marks.spot_marks = lambda r, *a, **k: np.zeros(r.shape, np.float32)
    try:
        yield
    finally:
        extract.colour_marks, shading.marks.spot_marks = cm, sm


def _pct(a: np.ndarray, q) -> list[float]:
    return [round(float(x), 4) for x in np.percentile(a, q)] if a.size else []


def constants_figures(model, rec, photo, lm, clean) -> dict:
    """The measurements behind backend/detail/photo/marks.py's thresholds, on the working grid:
    albedo brightness relative to skin's (as a ratio) on the clean map's valleys deeper than
    0.1 mm and on a painted glasses rim; the spot response on clean skin and on painted moles
    and freckles."""
    def traced(img):
        tr = {}
        extract.extract_photo_detail(model, rec, img, size=SIZE, trace=tr)
        return tr

    tr0 = traced(photo)
    w = tr0["r_lp"].shape[0]
    k = SIZE // w
    red = lambda a: a.reshape(w, k, w, k).mean((1, 3))  # noqa: E731
    skin = tr0["weight"] > 0
    valleys = skin & (red(clean.displacement) < -0.1)
    out = {"valley_brightness_p50_p10": _pct(np.exp(tr0["albedo_brightness"][valleys]), [50, 10])}
    painted, cover = paint(photo, lm, kinds=("glasses",))
    tr = traced(painted)
    rim = red(marks_in_uv(model, rec, cover, SIZE)["glasses"]) > 0.5
    out["rim_brightness_p50"] = _pct(np.exp(tr["albedo_brightness"][rim & (tr["weight"] > 0)]), [50])

    def strength(t):
        return shading.marks.spot_strength(t["r_lp"], t["weight"], t["texel_mm"], t["min_sigma"])[0]

    out["spot_response_clean_skin_p90_p99"] = _pct(strength(tr0)[skin], [90, 99])
    painted, cover = paint(photo, lm, kinds=("moles", "freckles"))
    tr = traced(painted)
    uv = marks_in_uv(model, rec, cover, SIZE)
    st = strength(tr)
    for kind in ("moles", "freckles"):
        out[f"spot_response_{kind}_p50"] = _pct(st[(red(uv[kind]) > 0.5) & (tr["weight"] > 0)], [50])
    return out


def _rms(a: np.ndarray) -> float:
    return round(float(np.sqrt(np.mean(a * a))), 4) if a.size else float("nan")


def main(job: str, figure: str | None = None, kinds=KINDS) -> dict:
    model = load_model()
    rec = FaceReconstruction.load(job)
    photo = load_rgb(rec.image)
    lm = np.asarray(rec.detection.landmarks)
    clean = extract.extract_photo_detail(model, rec, photo, size=SIZE)
    with no_cleaning():
        clean_off = extract.extract_photo_detail(model, rec, photo, size=SIZE)
    mm = clean.stats["texel_mm"]
    grow = max(1, int(round(1.0 / mm)))
    _, cover = paint(photo, lm)
    uv = marks_in_uv(model, rec, cover, SIZE)
    table = {}
    for kind in kinds:
        painted, _ = paint(photo, lm, kinds=(kind,))
        on = extract.extract_photo_detail(model, rec, painted, size=SIZE)
        with no_cleaning():
            off = extract.extract_photo_detail(model, rec, painted, size=SIZE)
        m = ndimage.binary_dilation(uv[kind] > 0.3, iterations=grow) & (clean.skin_mask > 0.05)
        table[kind] = {
            "texels": int(m.sum()),
            "change_without_mm": _rms((off.displacement - clean_off.displacement)[m]),
            "change_with_mm": _rms((on.displacement - clean.displacement)[m]),
            "clean_relief_mm": _rms(clean.displacement[m]),
            "glasses_found": on.stats.get("glasses"),
        }
    skin = clean.skin_mask > 0.5
    kept = {
        "rms_without_mm": _rms(clean_off.displacement[skin]),
        "rms_with_mm": _rms(clean.displacement[skin]),
        "correlation": round(float(np.corrcoef(clean.displacement[skin], clean_off.displacement[skin])[0, 1]), 3),
        "glasses_ring_coverage": clean.stats.get("glasses_ring_coverage"),
    }
    creases = {}
    for name, res in (("without", clean_off), ("with", clean)):
        st = stats.face_map_stats(model, res.displacement, np.asarray(rec.fit.identity))
        creases[name] = {r: (s.count, s.depth_mm) for r, s in st.regions.items() if s.count}
    result = {"marks": table, "clean_photo": kept, "creases_count_depth": creases,
              "thresholds": constants_figures(model, rec, photo, lm, clean)}
    print(json.dumps(result, indent=1))
    if figure:
        _figure(model, rec, photo, lm, clean, figure)
    return result


def _figure(model, rec, photo, lm, clean, path: str) -> None:
    from PIL import Image, ImageDraw

    painted, _ = paint(photo, lm)
    on = extract.extract_photo_detail(model, rec, painted, size=SIZE)
    with no_cleaning():
        off = extract.extract_photo_detail(model, rec, painted, size=SIZE)
    # photo: a square around the face; maps: the face's part of the tile (eyes to chin)
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    half = 0.75 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.25 * (y1 - y0)
    box = [int(cx - half), int(cy - half), int(cx + half), int(cy + half)]
    tile = 480
    crop = Image.fromarray(painted).crop(box).resize((tile, tile), Image.LANCZOS)
    r0, r1, c0, c1 = int(0.06 * SIZE), int(0.62 * SIZE), int(0.2 * SIZE), int(0.8 * SIZE)

    def relief(d):
        g = np.clip(128 + 127 * d[r0:r1, c0:c1] / 0.25, 0, 255).astype(np.uint8)
        return Image.fromarray(g).convert("RGB").resize((tile, tile), Image.LANCZOS)

    panels = [(crop, "photo with marks painted"), (relief(off.displacement), "D(I_x), no cleaning"),
              (relief(on.displacement), "D(I_x), cleaned"), (relief(clean.displacement), "clean photo's D(I_x)")]
    out = Image.new("RGB", (tile * len(panels), tile + 28), "white")
    draw = ImageDraw.Draw(out)
    for i, (im, label) in enumerate(panels):
        out.paste(im, (i * tile, 28))
        draw.text((i * tile + 8, 8), label, fill="black")
    out.save(path)
    print("wrote", path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
