"""docs/skin_material.jpg: the regional skin surface against one roughness, in the portrait view
(the key light rakes the face, so its highlights show the surface), on the bundled photo.

    .venv-blender/bin/python scripts/skin_material_figure.py [--out out/skin_material] [--size 768]

Reconstructs the photo headless (``reconstruct --view portrait``), renders the built .blend as it
is and again with the skin's map unplugged (Roughness 0.55, Specular IOR Level 0.5 everywhere:
the cheeks' values), and lays out the face crops (one roughness | regional) above the map's
roughness channel. Prints the mean and largest change of the render.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]
BACKEND = REPO / ".venv-backend" / "bin" / "python"

LAYOUT = r"""
import sys
import numpy as np
from PIL import Image
out = sys.argv[1]
flat, regional = (np.asarray(Image.open(f"{out}/{n}.png").convert("RGB"), np.float32) for n in ("flat", "regional"))
diff = np.abs(regional - flat).mean(2)
print(f"render change: mean {diff.mean():.2f}, largest {diff.max():.0f} levels of 255")
h, w = flat.shape[:2]
box = (int(0.2 * w), int(0.35 * h), int(0.75 * w), int(0.8 * h))  # nose, mouth, cheek of the portrait
crops = [Image.fromarray(a.astype(np.uint8)).crop(box) for a in (flat, regional)]
cw, ch = crops[0].size
rough = np.asarray(Image.open(f"{out}/astronaut_job/skin_surface.png").convert("RGB"))[..., 1]
lo, hi = 0.3 * 255, 0.6 * 255
vis = Image.fromarray(np.clip((rough - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)).convert("RGB").resize((ch, ch))
sheet = Image.new("RGB", (2 * cw + ch, ch), (255, 255, 255))
sheet.paste(crops[0], (0, 0)); sheet.paste(crops[1], (cw, 0)); sheet.paste(vis, (2 * cw, 0))
sheet.save(sys.argv[2], quality=90)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "out" / "skin_material"))
    ap.add_argument("--size", type=int, default=768)
    args = ap.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:])
    out = Path(args.out)
    subprocess.run([sys.executable, "-m", "facedet3d", "reconstruct", "--image", str(REPO / "assets" / "astronaut.jpg"),
                    "--out", str(out), "--view", "portrait", "--resolution", str(args.size), "--samples", "64"],
                   cwd=REPO, check=True)
    bpy.ops.wm.open_mainfile(filepath=str(out / "astronaut.blend"))
    scene = bpy.context.scene
    scene.render.filepath = str(out / "regional.png")
    bpy.ops.render.render(write_still=True)
    for mat in bpy.data.materials:  # the map unplugged: the cheeks' values everywhere
        nt = mat.node_tree
        if nt is None or "Skin surface" not in nt.nodes:
            continue
        bsdf = next(n for n in nt.nodes if n.type == "BSDF_PRINCIPLED")
        for link in [lk for lk in nt.links if lk.to_node == bsdf and lk.to_socket.name in
                     ("Roughness", "Specular IOR Level")]:
            nt.links.remove(link)
        bsdf.inputs["Roughness"].default_value, bsdf.inputs["Specular IOR Level"].default_value = 0.55, 0.5
    scene.render.filepath = str(out / "flat.png")
    bpy.ops.render.render(write_still=True)
    subprocess.run([str(BACKEND), "-c", LAYOUT, str(out), str(REPO / "docs" / "skin_material.jpg")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
