"""docs/deth_run.jpg: held-out pairs through DetH — source map D(I_x), DetH's D̃(I_y), the
physical target D(I_y), DetH's mask M — one row per wrinkling AU (evaluate.REGION_AUS): the pair
whose target raises that AU most over its source.

    .venv-backend/bin/python scripts/deth_figure.py out/deth_synth backend/learned/weights docs/deth_run.jpg
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.learned import weights  # noqa: E402
from backend.learned.train import data  # noqa: E402
from backend.learned.train.evaluate import HELD_OUT_EVERY, REGION_AUS, deth_outputs  # noqa: E402
from backend.models.emotions import au_rig  # noqa: E402
from backend.models.loader import load_model  # noqa: E402


def main(data_dir: str, weights_dir: str, out: str) -> int:
    d = data.load_shards(sorted(Path(data_dir).glob("synth_*.npz")))
    held = np.flatnonzero(d["seed"] % HELD_OUT_EVERY == 0)
    au = np.array([c["au"] for c in au_rig(load_model())])
    net, meta = weights.load("deth", weights_dir)
    rows, seeds = [], []
    for region, aus in REGION_AUS.items():
        on = np.isin(au, aus)
        gain = d["y"][held][:, on].mean(1) - d["x"][held][:, on].mean(1)
        i = held[[int(np.argmax(gain))]]
        seeds.append(int(d["seed"][i[0]]))
        pred, mask = deth_outputs(net, d, i)
        panels = [(f"{region}: D(I_x) source", d["dx"][i[0]].astype(np.float32)), ("DetH D~(I_y)", pred[0]),
                  ("physical D(I_y)", d["dy"][i[0]].astype(np.float32)), ("DetH mask M", mask[0] * 1.0 - 0.5)]
        tiles = []
        for label, m in panels:
            g = (np.clip(m / 0.5, -1, 1) * 0.5 + 0.5) * 255  # ±0.5 mm (mask: 0..1) as black..white
            img = Image.fromarray(g.astype(np.uint8)).convert("RGB").resize((256, 256), Image.LANCZOS)
            ImageDraw.Draw(img).text((6, 4), label, fill=(255, 40, 40))
            tiles.append(np.asarray(img))
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(out, quality=88)
    print(f"wrote {out}: seeds {seeds}, {meta['info'].get('name')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
