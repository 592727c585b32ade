"""Where generated files live, so a .blend never points into a temp or cache folder.

A saved .blend keeps its reconstructions in ``<blend stem>_facedet3d/<face>/`` beside it,
referenced by relative paths. An unsaved file uses the cache folder (preferences, else the
extension's user folder); when the file is saved those folders are moved beside it and
every path is made relative.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import bpy
from bpy.app.handlers import persistent

from ..link import settings
from ..prefs import ADDON_ID, prefs


def cache_root(context=None) -> Path:
    p = prefs(context)
    if p and p.cache_dir:
        root = Path(bpy.path.abspath(p.cache_dir))
    elif os.environ.get("FACEDET3D_CACHE_DIR"):
        root = Path(os.environ["FACEDET3D_CACHE_DIR"])
    else:
        try:
            root = Path(bpy.utils.extension_path_user(ADDON_ID, path="unsaved", create=True))
        except (ValueError, RuntimeError):
            # Not installed as an extension (the bpy module running a checkout): a user-level
            # cache, still never a temp folder.
            root = Path.home() / ".cache" / "facedet3d" / "unsaved"
    root.mkdir(parents=True, exist_ok=True)
    return root


def data_root(blend_path: str) -> Path:
    p = Path(blend_path)
    return p.parent / f"{p.stem}_facedet3d"


def new_job_dir(image_path: str, context=None) -> Path:
    parent = data_root(bpy.data.filepath) if bpy.data.filepath else cache_root(context)
    parent.mkdir(parents=True, exist_ok=True)
    return settings.unique_dir(parent, settings.slug(Path(image_path).stem))


def store_path(path: Path) -> str:
    """How a path is kept in the .blend: relative when the file is saved."""
    return bpy.path.relpath(str(path)) if bpy.data.filepath else str(path)


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


@persistent
def relocate_on_save(*args):
    """save_pre: move reconstructions out of the cache beside the file being saved, and keep
    every other job folder's path relative to the file's new location."""
    target = args[0] if args and isinstance(args[0], str) and args[0] else bpy.data.filepath
    if not target:
        return
    start = os.path.dirname(target)
    dest_root = data_root(target)
    cache = cache_root()
    moved: dict[str, str] = {}
    job_dirs: list[str] = []  # every face's folder before the move: only their images are ours
    for obj in bpy.data.objects:
        fd = getattr(obj, "facedet3d", None)
        if fd is None or not fd.job_dir:
            continue
        src = Path(bpy.path.abspath(fd.job_dir))
        job_dirs.append(os.path.normpath(str(src)))
        if src.is_dir() and _is_within(src, cache) and not _is_within(src, dest_root):
            if str(src) not in moved:
                dest_root.mkdir(parents=True, exist_ok=True)
                dest = settings.unique_dir(dest_root, src.name)
                shutil.move(str(src), str(dest))
                moved[str(src)] = str(dest)
            src = Path(moved[str(src)])
        fd.job_dir = bpy.path.relpath(str(src), start=start)
    for img in bpy.data.images:
        if not img.filepath:
            continue
        ap = os.path.normpath(bpy.path.abspath(img.filepath))
        owner = next((d for d in job_dirs if ap.startswith(d + os.sep)), None)
        if owner is None:
            continue  # the user's own images keep the paths the user chose
        if owner in moved:
            ap = moved[owner] + ap[len(owner):]
        img.filepath = bpy.path.relpath(ap, start=start)


def add_handler(handlers: list, fn) -> None:
    """Add an app handler once (register may run again after a reload)."""
    if fn not in handlers:
        handlers.append(fn)


def remove_handler(handlers: list, fn) -> None:
    if fn in handlers:
        handlers.remove(fn)


def register_handlers():
    add_handler(bpy.app.handlers.save_pre, relocate_on_save)


def unregister_handlers():
    remove_handler(bpy.app.handlers.save_pre, relocate_on_save)
