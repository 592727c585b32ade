"""The table behind docs/detail_maps.md's "What the generator makes": the crease generator at ages
25, 45 and 70 for each EMFACS prototype, measured by the wrinkle statistics (1024² maps, no micro
relief, mean face, seed 0), next to the anatomy table's bounds.

    .venv-backend/bin/python scripts/wrinkle_table.py [--size 1024] [--seed 0]

Prints Markdown: per prototype and age, each region with creases: count (bound), spacing (mm,
family spacing), median length / width / depth (mm), orientation (degrees on the face).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.detail.creases.anatomy import FAMILIES  # noqa: E402
from backend.detail.creases.generator import crease_map  # noqa: E402
from backend.detail.stats import face_map_stats  # noqa: E402
from backend.models import emotions  # noqa: E402
from backend.models.loader import load_model  # noqa: E402

FAMILY_OF = {r: f for f in FAMILIES for r in f.regions}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = load_model()
    rig = emotions.au_rig(model)
    presets = emotions.preset_controls(model, rig)
    print("| prototype | age | region | count (most) | spacing mm (family) | length mm | width mm | depth mm | angle ° |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("happy", "sad", "surprise", "fear", "anger", "disgust", "contempt"):
        w = emotions.weights_from_controls(rig, model.expression_names, presets[name])
        for age in (25.0, 45.0, 70.0):
            r = crease_map(model, None, w, size=args.size, age=age, seed=args.seed, micro=False)
            st = face_map_stats(model, r.displacement)
            rows = [(reg, rs) for reg, rs in st.regions.items() if rs.count]
            if not rows:
                print(f"| {name} | {age:g} | (none) | 0 | | | | | |")
            for reg, rs in rows:
                fam = FAMILY_OF.get(reg)
                most = fam.at_age(age)[0] if fam else 0
                sp = f"{rs.spacing_mm:.1f}" if rs.spacing_mm is not None else "–"
                print(f"| {name} | {age:g} | {reg} | {rs.count} ({most}) | {sp} ({fam.spacing_mm:g}) | "
                      f"{rs.length_mm:.1f} | {rs.width_mm:.2f} | {rs.depth_mm:.3f} | {rs.angle_deg:.0f} |"
                      if fam else f"| {name} | {age:g} | {reg} | {rs.count} | {sp} | {rs.length_mm:.1f} | "
                      f"{rs.width_mm:.2f} | {rs.depth_mm:.3f} | {rs.angle_deg:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
