"""How a learned map should reach 4096²: RCAN x4 twice, or what serving does (RCAN once, bicubic, the
face's fine relief: `serve.LearnedDetails.to_size` with the shipped weights), or bicubic alone -- on
held-out 4096² generator maps (docs/deth.md).

    .venv-backend/bin/python scripts/sr_4096.py [N]     # N identities from seed 300000 (default 3)

Each reference is the generator's 4096² map of a synthetic identity never trained on (seeds
300000, 300010, ...), one random expression; RCAN's input is that map area-reduced to 256² (a
perfect DetH), RCAN makes 1024², then each method makes 4096². Printed: seconds, the RMS of
relief finer than 8 texels on the face (the reference's too), and the crease errors of
``evaluate.crease_errors`` (wrinkle statistics per region against the reference's). The fine
relief uses another seed than the reference's, so its pores are not the reference's pores. "served"
includes its RCAN pass (RCAN's 256² -> 1024² time); the other two start from RCAN's 1024² map.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.core.imaging import block_reduce  # noqa: E402
from backend.detail import microrelief  # noqa: E402
from backend.detail.stats import face_map_stats  # noqa: E402
from backend.detail.strain import face_mesh  # noqa: E402
from backend.learned import serve  # noqa: E402
from backend.learned.sr import upsample_with_fine, upscale  # noqa: E402
from backend.learned.train.data import Synth  # noqa: E402
from backend.learned.train.evaluate import crease_errors  # noqa: E402


def main(n: int = 3) -> dict:
    torch.set_num_threads(2)
    syn = Synth.load()
    model = syn.model
    nets = serve.LearnedDetails()
    rcan = nets.rcan
    res = {k: {"seconds": [], "fine_mm": [], "errors": []} for k in ("rcan_twice", "served", "bicubic")}
    fine_ref = []
    for seed in range(300000, 300000 + 10 * n, 10):
        s = syn.samples(seed, 4096, 2)[0]
        ref, mask = s["dy"].astype(np.float32), s["mask"]

        def fine(m):
            return round(float((m - ndimage.gaussian_filter(m, 8))[mask].std()), 4)

        fine_ref.append(fine(ref))
        st_ref = face_map_stats(model, ref)
        lr = block_reduce(ref, 16)
        m1024 = upscale(rcan, lr)
        micro = microrelief.micro_relief(face_mesh(model, None), 4096, mask=mask, seed=seed + 7, age=float(s["age"]),
                                         density=microrelief.face_pore_density(model), direction=syn.line_direction)
        for k, fn in (("rcan_twice", lambda: upscale(rcan, m1024)),
                      ("served", lambda: nets.to_size(lr, 4096, fine=micro)),
                      ("bicubic", lambda: upsample_with_fine(m1024, 4096))):
            t = time.perf_counter()
            m = fn()
            res[k]["seconds"].append(round(time.perf_counter() - t, 2))
            res[k]["fine_mm"].append(fine(m))
            res[k]["errors"].append(crease_errors(st_ref, face_map_stats(model, m)))
        print(seed, "done", file=sys.stderr, flush=True)
    out = {"reference_fine_mm": fine_ref}
    for k, v in res.items():
        w = [e for c in v["errors"] for e in c["width"]]
        d = [e for c in v["errors"] for e in c["depth"]]
        f = [e for c in v["errors"] for e in c["found"]]
        out[k] = {"seconds": v["seconds"], "fine_mm": v["fine_mm"], "crease_width_error_mm": round(float(np.mean(w)), 3),
                  "crease_depth_error_mm": round(float(np.mean(d)), 3), "crease_regions_found": round(float(np.mean(f)), 3)}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
