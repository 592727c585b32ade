"""Getting the default model: the public ICT-FaceKit release at a pinned commit, every file checked
against its SHA-256 (``ict_release_manifest.json``: the model folder ``FaceXModel/`` and the
licence, credits and README that must travel with it), into a folder the model loader reads
(:mod:`.ict_release` converts it on first use).

Files come one by one from a base location: by default the repository's raw files at the pinned
commit over HTTPS; a local folder (a checkout or an unzipped download of the repository) or a
``file://`` URL stands in for it (no network, or a studio mirror). They land in
``<dest>.partial/`` first — verified files there are kept, so an interrupted download resumes —
and the folder becomes ``<dest>`` only when every file is there and verified.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from protocol.atomic import replacing

from ..core.errors import ModelNotFoundError
from ..core.files import sha256_file as _sha256

MANIFEST = Path(__file__).with_name("ict_release_manifest.json")
CHUNK = 1 << 20


def manifest() -> dict:
    """The pinned release; ``$FACEDET3D_MODEL_MANIFEST`` names another (a studio's mirror that
    pins its own files, and the tests' stand-in for the remote)."""
    return json.loads(Path(os.environ.get("FACEDET3D_MODEL_MANIFEST") or MANIFEST).read_text(encoding="utf-8"))


def default_source(m: Optional[dict] = None) -> str:
    m = m or manifest()
    return f"https://raw.githubusercontent.com/{m['repository']}/{m['commit']}/"


def _url(source: str, rel: str) -> str:
    if "://" in source:
        return source.rstrip("/") + "/" + rel
    return Path(source).expanduser().resolve().joinpath(rel).as_uri()


def _download(url: str, target: Path, timeout: float, limit: int) -> None:
    """At most ``limit`` bytes (a wrong mirror cannot fill the disk before the check)."""
    got = 0
    with (replacing(target, ".download") as tmp, urllib.request.urlopen(url, timeout=timeout) as r,  # noqa: S310
          open(tmp, "wb") as f):
        while got <= limit:
            block = r.read(min(CHUNK, limit + 1 - got))
            if not block:
                break
            f.write(block)
            got += len(block)


def what_to_do(m: dict, dest: Path) -> str:
    return (f"Download the ICT-FaceKit repository at commit {m['commit'][:10]} "
            f"(https://github.com/{m['repository']}/archive/{m['commit']}.zip), unzip it and point the model "
            f"folder at it — or run `python -m backend fetch-model --to {dest} --source <that folder>`.")


def fetch_model(dest: str | os.PathLike, source: Optional[str] = None, job=None, timeout: float = 60.0,
                m: Optional[dict] = None) -> Path:
    """The pinned release's files into ``dest`` (a new folder), each verified; returns ``dest``.
    ``source``: the base the files' relative paths are read from (default: the repository's raw
    files at the pinned commit). ``m``: the manifest (tests pass their own)."""
    m = m or manifest()
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise ModelNotFoundError(f"{dest} is a file: the model is fetched into a new folder.", "Choose a new folder.")
    if dest.exists() and any(dest.iterdir()):
        raise ModelNotFoundError(f"{dest} is not empty: the model is fetched into a new folder.",
                                 "Choose a new folder, or point the model folder at this one if it holds the model.")
    source = source or default_source(m)
    partial = dest.with_name(dest.name + ".partial")
    files = m["files"]
    total = sum(f["bytes"] for f in files.values())
    done = 0
    for rel, want in files.items():
        target = partial / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if job is not None:
            job.check()
            job.report(done / total, f"Getting the default model: {rel} ({done / 1e6:.0f} of {total / 1e6:.0f} MB)")
        if not (target.is_file() and target.stat().st_size == want["bytes"] and _sha256(target) == want["sha256"]):
            try:
                _download(_url(source, rel), target, timeout, want["bytes"])
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise ModelNotFoundError(f"Could not get {rel} from {source} ({getattr(exc, 'reason', exc)}).",
                                         what_to_do(m, dest)) from exc
            size = target.stat().st_size
            if size < want["bytes"]:
                target.unlink(missing_ok=True)
                raise ModelNotFoundError(f"The download of {rel} from {source} was cut off ({size} of {want['bytes']} "
                                         "bytes).", "Run it again: the files already checked are kept.")
            got = _sha256(target)
            if got != want["sha256"]:
                target.unlink(missing_ok=True)
                raise ModelNotFoundError(f"{rel} from {source} is not the pinned release's file (SHA-256 {got[:12]}…, "
                                         f"expected {want['sha256'][:12]}…).", what_to_do(m, dest))
        done += want["bytes"]
    (partial / "FETCHED.json").write_text(json.dumps({k: m[k] for k in ("repository", "commit")} | {"source": source},
                                                     indent=1))
    if dest.exists():
        dest.rmdir()
    os.replace(partial, dest)
    if job is not None:
        job.report(1.0, "Default model downloaded and verified")
    return dest
