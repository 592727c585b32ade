"""Record what the shipped nets (RCAN, and DetH once shipped) give for one held-out synthetic sample, for
tests/backend/test_learned_serve.py. Run after exporting new weights:

    .venv-backend/bin/python scripts/record_learned.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "backend"))

from test_learned_serve import RECORDED, recorded_outputs  # noqa: E402

from backend.learned.train import data  # noqa: E402

SEED = 1_000_000  # a multiple of 10: an identity the nets never trained on


def main() -> int:
    pairs = data.Synth.load().samples(SEED, data.SIZE)
    s = max(pairs, key=lambda p: float(np.abs(p["y"] - p["x"]).sum()))  # the pair that moves most
    rec = {"dx": s["dx"], "uv": s["mask"].astype(np.uint8), "x": s["x"], "y": s["y"],
           "identity": s["identity"], "age": np.float32(s["age"])}
    got = recorded_outputs(rec)
    RECORDED.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(RECORDED, **rec, **{f"out_{k}": v for k, v in got.items()})
    print(f"wrote {RECORDED} ({RECORDED.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
