"""DetH + RCAN as a detail model of the registry (FaceDet3D §3.2): DetH hallucinates the target
expression's detail map at 256² from the photo's D(I_x), mask-blended with it, and RCAN
super-resolves it to 1024²; larger maps get the physical model's pores and fine lines on a
bicubic upsample (``serve.LearnedDetails.to_size``)."""

from __future__ import annotations

import numpy as np

from ..core.progress import Job
from ..detail.creases import generator
from ..detail.face import ReconstructedFace
from ..detail.registry import Availability, DetailMaker, DetailModel
from . import serve, weights

NAME = "deth"


class DetHMaker(DetailMaker):
    def __init__(self, face: ReconstructedFace, years: float, seed: int, job: Job):
        self.nets = serve.get()
        self.face, self.years, self.job = face, years, job  # the nets are deterministic: no seed
        self.made_by = self.nets.name
        # the tag names how maps above RCAN's size are made, so maps of the earlier second RCAN
        # pass are never taken for this method's
        self.tag_variant = f"{self.nets.name}+{serve.ABOVE_SR}"
        self.progress_message = f"Hallucinating details with {self.nets.name}"
        self._inputs = None
        self._zero: dict[int, np.ndarray] = {}

    def _inp(self) -> dict:
        if self._inputs is None:
            self._inputs = serve.face_inputs(self.face, self.job)
        return self._inputs

    def _map(self, y: np.ndarray, size: int, job: Job | None = None) -> np.ndarray:
        fine = (generator.face_micro_relief(self.face.model, self.face.identity, size, self.years)
                if size > self.nets.fine_from else None)
        return self.nets.to_size(self.nets.map_for(self._inp(), y[None], self.years)[0], size, job, fine=fine)

    def detail_map(self, weights_: np.ndarray, size: int, job: Job) -> np.ndarray:
        y = serve.controls_vector(self.face.rig, self.face.model.expression_names, weights_)
        return self._map(y, size, job)

    def wrinkles(self, values: dict[str, float], size: int) -> np.ndarray:
        if size not in self._zero:
            self._zero[size] = self._map(np.zeros(len(self.face.rig), np.float32), size)
        return self._map(serve.values_vector(self.face.rig, values), size) - self._zero[size]


class DetHModel(DetailModel):
    name = NAME
    label = "DetH"
    description = "The learned detail hallucination net, super-resolved by RCAN (fails when not installed)"
    # below the physical model: "auto" takes the physical model; DetH runs when asked for by name. deth-synth-v2, the
    # first DetH trained on creases, is behind the crease generator it learned from on held-out
    # identities (AU-regressor MAE 0.063 vs 0.055; glabella r 0.12 vs 0.66, nose 0.17 vs 0.78)
    # and draws blurred, beaded lines with straight edges from its stripe inputs
    # (backend/learned/weights/MODEL_CARD.md). Raise it again when a DetH beats the generator.
    priority = -10

    def availability(self) -> Availability:
        if not serve.available():
            return Availability(False, f"the DetH and RCAN weights are not installed in {weights.weights_dir()}",
                                "Use the physical model, or train and export them (docs/deth.md).")
        try:
            names = [weights.metadata(k)["info"].get("name", k) for k in ("deth", "rcan")]
        except (FileNotFoundError, ValueError) as exc:
            return Availability(False, str(exc), "Copy the weights again, or use the physical model.")
        return Availability(True, made_by="+".join(names))

    def open(self, face: ReconstructedFace, years: float, seed: int, job: Job) -> DetHMaker:
        return DetHMaker(face, years, seed, job)
