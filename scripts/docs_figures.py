"""Make docs/demo.jpg from the demo's real output: the photo | the Cycles render through the
fitted camera | the frowning face in the portrait view with its wrinkles, at the render's own
resolution (scaled down, 0.3 mm creases fall below a pixel). Runs on the bpy module
without the add-on (it only reads PNGs). After scripts/demo.sh:

    .venv-blender/bin/python scripts/docs_figures.py out/demo assets/astronaut.jpg docs/demo.jpg
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


def face_crop(path: str, size: int) -> np.ndarray:
    """A size² window of the portrait render, unscaled, over brows to chin (the portrait view frames
    the head the same way for every face: backend/reconstruct/scene_export.py)."""
    img = bpy.data.images.load(path)
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    px = px.reshape(h, w, 4)
    x0, top = int(0.21 * w), int(0.25 * h)  # from the left, and from the top (rows are bottom-first)
    if x0 + size > w or top + size > h:
        raise ValueError(f"{path} is {w}x{h}: too small for a {size}² window")
    return px[h - top - size:h - top, x0:x0 + size]


def main(demo: str, photo: str, out: str, height: int = 640) -> None:
    demo = Path(demo)
    panels = [pixels(photo, height), pixels(str(demo / "astronaut_render.png"), height),
              face_crop(str(demo / "anger" / "astronaut_render.png"), height)]
    strip = np.concatenate(panels, axis=1)
    img = bpy.data.images.new("demo", strip.shape[1], strip.shape[0], alpha=True)
    img.pixels.foreach_set(strip.ravel())
    img.filepath_raw = out
    img.file_format = "JPEG" if out.lower().endswith((".jpg", ".jpeg")) else "PNG"
    img.save(quality=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    main(*args)
