"""A finished reconstruction opened for detail work: its folder, data model, morphable model and
AU rig, and the person's own detail D(I_x) (made once, cached in the folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from protocol import jsonfile
from protocol.details import PHOTO_DETAIL_FILE, PHOTO_DETAIL_SIZE, PHOTO_DETAIL_STAMP
from protocol.job import FaceReconstruction

from ..core import exr_io
from ..core.image_io import load_rgb
from ..core.progress import Job
from ..models import emotions
from ..models.loader import load_model
from ..models.morphable import MorphableModel
from .photo.extract import METHOD_VERSION, extract_photo_detail


@dataclass
class ReconstructedFace:
    folder: Path
    rec: FaceReconstruction
    model: MorphableModel
    rig: list[dict]  # the AU rig's controls (backend.models.emotions.au_rig)

    @classmethod
    def open(cls, job_dir: str | Path) -> "ReconstructedFace":
        folder = Path(job_dir)
        rec = FaceReconstruction.load(folder)
        model = load_model(rec.model_dir)
        return cls(folder, rec, model, emotions.au_rig(model))

    @property
    def identity(self) -> np.ndarray:
        return np.asarray(self.rec.fit.identity, np.float64)

    def years(self, age: Optional[float] = None) -> float:
        """``age`` when given, else the face's estimated age."""
        return float(age) if age is not None else self.rec.age_years

    def photo_detail(self, job: Optional[Job] = None) -> np.ndarray:
        """D(I_x) at PHOTO_DETAIL_SIZE², made once and cached as an EXR in the job folder, with a
        stamp of what it was made from (the reconstruction's source key: the photo's content and
        fit) and by which method; a cache whose stamp does not match is made again. Always the
        stored (half-float) map, so a request gives the same maps whether it made the cache or
        found it."""
        path, stamp_path = self.folder / PHOTO_DETAIL_FILE, self.folder / PHOTO_DETAIL_STAMP
        stamp = {"source": self.rec.source_key(), "method": METHOD_VERSION}
        try:
            fresh = path.is_file() and jsonfile.read(stamp_path) == stamp
        except (OSError, ValueError):  # no stamp (an older job) or an unreadable one
            fresh = False
        if not fresh:
            res = extract_photo_detail(self.model, self.rec, load_rgb(self.rec.image), size=PHOTO_DETAIL_SIZE,
                                       job=job)
            exr_io.write_map(path, res.displacement)
            jsonfile.write_atomic(stamp_path, stamp)
        return exr_io.read_map(path)
