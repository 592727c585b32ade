"""Make docs/demo.png from the demo's real output: the photo | the Cycles render through the
fitted camera | the surprised face in the portrait view with its wrinkles. Runs on the bpy module
without the add-on (it only reads PNGs). After scripts/demo.sh:

    .venv-blender/bin/python scripts/docs_figures.py out/demo assets/astronaut.jpg docs/demo.png
"""

import sys
from pathlib import Path

import bpy
import numpy as np


def pixels(path: str, width: int, height: int | None = None) -> np.ndarray:
    """RGBA float pixels (rows bottom-first, as Blender holds them) scaled to width x height."""
    height = height or width
    img = bpy.data.images.load(path)
    img.scale(width, height)
    px = np.empty(width * height * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px.reshape(height, width, 4)


def main(demo: str, photo: str, out: str, height: int = 640) -> None:
    demo = Path(demo)
    panels = [pixels(photo, height), pixels(str(demo / "astronaut_render.png"), height),
              pixels(str(demo / "surprise" / "astronaut_render.png"), int(round(0.8 * height)), height)]
    strip = np.concatenate(panels, axis=1)
    img = bpy.data.images.new("demo", strip.shape[1], strip.shape[0], alpha=True)
    img.pixels.foreach_set(strip.ravel())
    img.filepath_raw = out
    img.file_format = "PNG"
    img.save()
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    main(*args)
