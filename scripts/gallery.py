"""docs/gallery.jpg: the bundled photo's face under the EMFACS prototypes, with their wrinkles, in
the portrait view (three-quarter close-up, raking key light), at three ages.

Real renders: the demo's job folder, the backend's `details` method for each preset (as AU rig
controls, what the sliders hold), the add-on's scene builder and displacement wiring, Cycles.
Rows: the photo's skin at the age the photo shows, then clay (grey, no texture: the relief
alone, as an artist judges a sculpt) at 25, 45 and 70 years. Run after scripts/demo.sh:

    .venv-blender/bin/python scripts/gallery.py out/demo/astronaut_job docs/gallery.png [physical|deth]

The third argument picks the detail model (default physical; deth: the learned nets, which
must be installed).
"""

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("facedet3d_bootstrap", ROOT / "facedet3d.py")
boot = importlib.util.module_from_spec(spec)
spec.loader.exec_module(boot)
boot.load_package().register()
from facedet3d_ext.addon.link import session  # noqa: E402
from facedet3d_ext.addon.scene import au_rig, builder, displacement  # noqa: E402

PRESETS = ("neutral", "happy", "surprise", "anger", "disgust")
ROWS = (("photo", None), ("clay", 25.0), ("clay", 45.0), ("clay", 70.0))  # (look, age; None: the photo's)
CLAY = (0.5, 0.5, 0.5, 1.0)


def clay(obj) -> None:
    """Grey, textureless skin: unlink every base colour and subsurface of the face's materials."""
    for mat in obj.data.materials:
        if mat is None or not mat.use_nodes:
            continue
        for node in mat.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                for link in list(node.inputs["Base Color"].links):
                    mat.node_tree.links.remove(link)
                node.inputs["Base Color"].default_value = CLAY
                node.inputs["Subsurface Weight"].default_value = 0.0


def main(job_dir: str, out: str, model: str = "physical", height: int = 400, samples: int = 32) -> None:
    job_dir = Path(job_dir).resolve()
    tmp = Path(tempfile.mkdtemp())
    # work on a copy: the maps this writes stay out of the demo's job folder
    work = tmp / job_dir.name
    shutil.copytree(job_dir, work)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp / "gallery.blend"))
    built = builder.build_face(bpy.context, work, name="face", view="portrait")
    face, scene = built.obj, bpy.context.scene
    width = int(round(height * scene.render.resolution_x / scene.render.resolution_y))
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.cycles.samples = samples
    presets = au_rig.presets(face)
    client = session.get_client()
    rows = []
    for look, age in ROWS:
        if look == "clay":
            clay(face)
        tiles = []
        for name in PRESETS:
            values = presets.get(name, {})
            params = {"job_dir": str(work), "model": model, "controls": values, **({"age": age} if age else {})}
            res = client.call("details", params, timeout=1800)
            au_rig.apply_values(face, values)
            displacement.attach(face, work / res["files"]["4096"], vertex_range=res["vertex_range"],
                                material_name=res["material"])
            scene.render.filepath = str(tmp / f"{len(rows)}_{name}.png")
            bpy.ops.render.render(write_still=True)
            img = bpy.data.images.load(scene.render.filepath)
            px = np.empty(width * height * 4, np.float32)
            img.pixels.foreach_get(px)
            tiles.append(px.reshape(height, width, 4))
            print(f"{look} {res['age_years']:.0f} y, {name}: {res['model']}, RMS {res['stats']['rms_mm']:.3f} mm",
                  flush=True)
        rows.append(np.concatenate(tiles, axis=1))
    session.shutdown()
    grid = np.concatenate(rows[::-1], axis=0)  # Blender's pixel rows run bottom-first
    img = bpy.data.images.new("gallery", grid.shape[1], grid.shape[0], alpha=True)
    img.pixels.foreach_set(grid.ravel())
    img.filepath_raw = out
    img.file_format = "PNG"
    img.save()
    print("columns:", " | ".join(PRESETS), "; rows:", " | ".join(f"{look} {age or 'photo age'}" for look, age in ROWS))
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]))
