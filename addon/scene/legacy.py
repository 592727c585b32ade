"""Files made before the AU values became plain custom properties (scene/au_rig.py says why):
their drivers and F-curves read ``facedet3d.aus[...].value`` and ``facedet3d.wrinkle_keys[...].weight``,
properties this version no longer registers. On load, with the add-on enabled, such a face is
brought forward: the stored values (still in the object's system properties) become the custom
properties, and every driver and F-curve path is rewritten to them. Saved again, the file plays
in a Blender without the add-on too.
"""

from __future__ import annotations

import re

import bpy
from bpy.app.handlers import persistent

from . import au_rig, storage

_AUS = re.compile(r'^facedet3d\.aus\[(?:"([^"]+)"|(\d+))\]\.value$')
_KEYS = re.compile(r'^facedet3d\.wrinkle_keys\[(?:"([^"]+)"|(\d+))\]\.weight$')


def _new_path(path: str, au_names: list[str], key_names: list[str]) -> str | None:
    for pattern, names in ((_AUS, au_names), (_KEYS, key_names)):
        m = pattern.match(path)
        if m:
            name = m.group(1) if m.group(1) is not None else names[int(m.group(2))]
            return au_rig.path(name)
    return None


def _stored(obj, what: str, field: str) -> list[tuple[str, float]]:
    """(name, value) of the items of the old collection ``what`` kept in the system properties."""
    try:
        items = obj.bl_system_properties_get()["facedet3d"][what]
    except (KeyError, TypeError, AttributeError):
        return []
    return [(str(it.get("name", "")), float(it.get(field, 0.0))) for it in items]


def _datablocks_with_drivers(obj):
    yield obj
    if obj.data.shape_keys is not None:
        yield obj.data.shape_keys
    for mat in obj.data.materials:
        if mat is not None and mat.node_tree is not None:
            yield mat.node_tree
    for ng in bpy.data.node_groups:
        yield ng


def migrate(obj) -> bool:
    """Bring one face forward; True when something was rewritten."""
    fd = getattr(obj, "facedet3d", None)
    if fd is None or not len(fd.aus) or all(item.name in obj.keys() for item in fd.aus):
        return False
    au_names = [item.name for item in fd.aus]
    key_names = [item.name for item in fd.wrinkle_keys]
    old = dict(_stored(obj, "aus", "value"))
    old_w = dict(_stored(obj, "wrinkle_keys", "weight"))
    for item in fd.aus:
        if item.name not in obj.keys():
            au_rig.add_value(obj, item.name, old.get(item.name, 0.0), f"AU{item.au} {item.label}"
                             f"{f' ({item.side})' if item.side else ''}: FACS intensity, 0 (absent) to 1 (maximum, E)")
    for name in key_names:
        if name not in obj.keys():
            au_rig.add_value(obj, name, old_w.get(name, 0.0), "How much of this key's exact wrinkles show")
    for idb in _datablocks_with_drivers(obj):
        ad = getattr(idb, "animation_data", None)
        for fc in (ad.drivers if ad else []):
            for var in fc.driver.variables:
                for tgt in var.targets:
                    if tgt.id == obj:
                        new = _new_path(tgt.data_path, au_names, key_names)
                        if new:
                            tgt.data_path = new
    ad = obj.animation_data
    if ad is not None and ad.action is not None:
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
        for fc in (bag.fcurves if bag else []):
            new = _new_path(fc.data_path, au_names, key_names)
            if new:
                fc.data_path = new
    au_rig.changed(obj)
    return True


@persistent
def migrate_on_load(_dummy=None) -> None:
    done = [o.name for o in bpy.data.objects if o.type == "MESH" and migrate(o)]
    if done:
        print(f"FaceDet3D: brought {', '.join(done)} forward (AU values as custom properties); save to keep it")


def register_handlers():
    storage.add_handler(bpy.app.handlers.load_post, migrate_on_load)


def unregister_handlers():
    storage.remove_handler(bpy.app.handlers.load_post, migrate_on_load)
