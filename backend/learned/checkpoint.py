"""Resumable training state shared by the trainers: nets, optimisers, step and both RNGs in one
``checkpoint.pt``, written atomically, so a resumed run continues exactly where it stopped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protocol.atomic import replacing


def save(path: Path, parts: dict, step: int, rng: np.random.Generator, config: dict) -> None:
    """``parts``: name -> module or optimiser (its state_dict is stored under the name)."""
    with replacing(path) as tmp:
        torch.save({**{k: v.state_dict() for k, v in parts.items()}, "step": step,
                    "np_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "config": config}, tmp)


def resume(path: Path, parts: dict, rng: np.random.Generator, device, log) -> int:
    """Load ``path`` into ``parts`` and the RNGs when it exists; the step to start from (0: none)."""
    if not path.is_file():
        return 0
    st = torch.load(path, map_location=device, weights_only=False)
    for k, v in parts.items():
        v.load_state_dict(st[k])
    rng.bit_generator.state = st["np_rng"]
    torch.set_rng_state(st["torch_rng"])
    log(f"resumed at step {st['step']}")
    return int(st["step"])
