"""Make docs/demo.png from the demo's real output: photo | render through the fitted camera |
a three-quarter close-up. Runs on the bpy module without the add-on. After scripts/demo.sh:

    .venv-blender/bin/python scripts/docs_figures.py out/demo/astronaut.blend assets/astronaut.jpg docs/demo.png
"""

import math
import sys
import tempfile

import bpy
import numpy as np
from mathutils import Vector


def pixels(path: str, size: int) -> np.ndarray:
    img = bpy.data.images.load(path)
    img.scale(size, size)
    px = np.empty(size * size * 4, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px.reshape(size, size, 4)


def render(path: str, size: int) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True)
    return pixels(path, size)


def look_from(cam, target: Vector, yaw_deg: float, pitch_deg: float, distance: float) -> None:
    """Place the camera on a sphere around the target (yaw about +Z from the front, -Y)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    offset = Vector((math.sin(yaw) * math.cos(pitch), -math.cos(yaw) * math.cos(pitch), math.sin(pitch)))
    cam.location = target + offset * distance
    cam.rotation_mode = "QUATERNION"
    cam.rotation_quaternion = (target - cam.location).to_track_quat("-Z", "Y")


def main(blend: str, photo: str, out: str, size: int = 512, yaw: float = 35.0) -> None:
    bpy.ops.wm.open_mainfile(filepath=blend)
    scene = bpy.context.scene
    scene.cycles.samples = 64
    tmp = tempfile.mkdtemp()
    panels = [pixels(photo, size), render(f"{tmp}/front.png", size)]
    face = next(o for o in scene.objects if o.type == "MESH" and o.data.shape_keys)
    co = np.empty(len(face.data.vertices) * 3, np.float32)
    face.data.vertices.foreach_get("co", co)
    # Aim between the face (ICT face region, vertices 0-9408) and the skull behind it.
    centre = face.matrix_world @ (Vector(co.reshape(-1, 3)[:9409].mean(0).tolist()) + Vector((0, 0.045, 0)))
    cam = scene.camera
    cam.data.lens = 85.0
    cam.data.shift_x = cam.data.shift_y = 0.0
    look_from(cam, centre, float(yaw), 5.0, 0.95)
    panels.append(render(f"{tmp}/three_quarter.png", size))
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
