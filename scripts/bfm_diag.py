"""The figures behind docs/bfm.md's "Measured" table: BFM conversion of BFM 2009 layout test files
(backend/bfm_synthetic.py) against their ground truth, one row of figures per seed.

    .venv-backend/bin/python scripts/bfm_diag.py [--seeds 3 5 7]

Per seed: landmark transfer error (mm), the registered template against the true positions on
the face, each expression shape's relative RMS error on its moving face vertices for deformation
transfer and for copying the displacement at the closest template point, and the face UVs'
quality with and without stretch balancing. About 40 s a seed on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import bfm_model, registration, uv_param  # noqa: E402
from backend.bfm_synthetic import make_truth, shape_errors, write_bfm2009  # noqa: E402
from backend.deformation_transfer import Transfer  # noqa: E402
from backend.face_model import default_model_dir, load_model  # noqa: E402

KEY_SHAPES = ("jawOpen", "mouthSmile_L", "noseSneer_R", "eyeBlink_L", "browInnerUp_L")


def one_seed(ict, seed: int, folder: Path) -> None:
    truth = make_truth(ict, seed=seed)
    path = write_bfm2009(folder / f"seed{seed}.mat", truth)
    model, report = bfm_model.convert(str(path), str(default_model_dir()))
    where = {int(s): i for i, s in enumerate(truth.source_vertex)}
    lm_true = truth.mean_mm[[where[int(v)] for v in ict.landmark_vertices]]
    lm = np.linalg.norm(model.neutral[model.landmark_vertices] - lm_true, axis=1)

    # the registration again, to compare its template with the truth and to copy displacements
    used, tris, _ = ict.skin_submesh()
    reg = registration.register(ict.neutral[used], tris, truth.mean_mm, truth.triangles)
    on_face = used < ict.regions["face"][0][1]
    dense = np.linalg.norm(reg.vertices - truth.mean_mm[[where[int(v)] for v in used]], axis=1)[on_face]
    tr = Transfer(reg.vertices, tris, truth.mean_mm, truth.triangles)
    deltas = ict.expression_basis[:, used].astype(np.float64)
    copied = np.stack([tr.src.interpolate(tr.vert_hits, d) for d in deltas])  # file order

    face = np.zeros(model.n_vertices, bool)
    face[: model.regions["face"][0][1]] = True
    order = model.source_vertex_ids
    dt = shape_errors(model.expression_basis, truth.expression_mm[:, order], face, model.expression_names)
    cp = shape_errors(copied[:, order], truth.expression_mm[:, order], face, model.expression_names)

    tv, tu = model.triangles(model.regions["face"][1])
    uv = np.zeros((model.n_vertices, 2))
    uv[tv.ravel()] = model.uvs[tu.ravel()]
    q = uv_param.quality(model.neutral, tv, uv)
    plain = uv_param.quality(model.neutral, tv, uv_param.disk_map(model.neutral, tv, balance=False))

    v = np.array(list(dt.values()))
    print(f"seed {seed}: landmarks median {np.median(lm):.2f} / p90 {np.percentile(lm, 90):.2f} / worst inner "
          f"{lm[17:].max():.2f} / worst {lm.max():.2f} mm; template on the face median {np.median(dense):.2f} / "
          f"p90 {np.percentile(dense, 90):.2f} mm")
    print(f"  expressions (deformation transfer): median {np.median(v):.3f}, worst {v.max():.3f} "
          f"({max(dt, key=dt.get)}); " + ", ".join(f"{k} {dt[k]:.3f}" for k in KEY_SHAPES))
    print("  copied displacement instead:        median {:.3f}; ".format(np.median(list(cp.values())))
          + ", ".join(f"{k} {cp[k]:.3f}" for k in KEY_SHAPES))
    print(f"  face UVs: flipped {q.flipped}, conformal median {q.conformal_median:.2f} / p95 {q.conformal_p95:.2f}, "
          f"density p05 {q.area_p05:.2f} / p95 {q.area_p95:.2f} (unbalanced: p05 {plain.area_p05:.3f}, "
          f"conformal p95 {plain.conformal_p95:.2f}); conversion {report['timings']['total_s']:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 7])
    args = ap.parse_args()
    ict = load_model()
    with tempfile.TemporaryDirectory() as d:
        for seed in args.seeds:
            one_seed(ict, seed, Path(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
