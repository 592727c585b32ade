"""The physical detail model: the person's detail D(I_x) plus the expression's creases where the
anatomy puts them (``creases``), with pores and micro relief (``microrelief``)."""

from __future__ import annotations

import numpy as np

from ..core.imaging import resample
from ..core.progress import Job
from ..models import emotions
from .creases.generator import crease_map
from .face import ReconstructedFace
from .registry import Availability, DetailMaker, DetailModel

NAME = "physical"


class PhysicalMaker(DetailMaker):
    made_by = NAME
    tag_variant = ""  # the first model: its tags carry no variant (maps made before stay valid)
    progress_message = "Tracing expression creases"

    def __init__(self, face: ReconstructedFace, years: float, seed: int, job: Job):
        self.face, self.years, self.seed, self.job = face, years, seed, job
        self._person: dict[int, np.ndarray] = {}

    def _person_at(self, size: int) -> np.ndarray:
        if size not in self._person:
            self._person[size] = resample(self.face.photo_detail(self.job), size)
        return self._person[size]

    def detail_map(self, weights: np.ndarray, size: int, job: Job) -> np.ndarray:
        person = self._person_at(size)
        w = crease_map(self.face.model, self.face.identity, weights, size=size, age=self.years, person_detail=person,
                       seed=self.seed, job=job)
        self._person.pop(size)  # a 4096² map is 64 MB: keep only what the rig reuses
        return person + w.displacement

    def wrinkles(self, values: dict[str, float], size: int) -> np.ndarray:
        weights = emotions.weights_from_controls(self.face.rig, self.face.model.expression_names, values)
        return crease_map(self.face.model, self.face.identity, weights, size=size, age=self.years,
                          person_detail=self._person_at(size), seed=self.seed, micro=False).displacement


class PhysicalModel(DetailModel):
    name = NAME
    label = "Physical"
    description = "Creases where the expression's AUs compress the skin, sized after published measurements"
    priority = 0

    def availability(self) -> Availability:
        return Availability(True, made_by=NAME)

    def open(self, face: ReconstructedFace, years: float, seed: int, job: Job) -> PhysicalMaker:
        return PhysicalMaker(face, years, seed, job)
