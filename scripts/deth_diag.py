"""A fast check of a DetH variant: does it learn where each AU wrinkles? (docs/deth.md, Networks)

Trains DetH on the synthetic pairs area-reduced to S² with the paired and mask terms only (the
warm-up's objective; batch 8, Adam at LR), then prints the held-out regional Pearson r of wrinkle
energy against target AU intensity and the high-intensity energies (DetH / physical):

    .venv-backend/bin/python scripts/deth_diag.py NAME STEPS [S=128] [LR=3e-4] ['{"stripes": 0}']

The figures quoted in docs/deth.md and nets.py for stripes, AU maps and the mask bias came from
this script (400 or 1200 steps at 128², LR 1e-3, out/deth_synth).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
torch.set_num_threads(2)
from backend.learned.nets import DetH, DetHConfig, feature_sigma  # noqa: E402
from backend.learned.train import data  # noqa: E402
from backend.learned.train import deth as T
from backend.learned.train.evaluate import REGION_AUS, _energy, _pearson  # noqa: E402
from backend.models.emotions import au_rig  # noqa: E402
from backend.models.loader import load_model  # noqa: E402
from backend.models.regions import region_masks  # noqa: E402

variant = sys.argv[1]; steps = int(sys.argv[2]); S = int(sys.argv[3]) if len(sys.argv) > 3 else 128
lr = float(sys.argv[4]) if len(sys.argv) > 4 else 3e-4
d = data.load_shards(sorted(Path("out/deth_synth").glob("synth_*.npz")))
def red(a):
    t = torch.from_numpy(a.astype(np.float32))[:, None]
    return F.adaptive_avg_pool2d(t, S)[:, 0].numpy()
d["dx"], d["dy"] = red(d["dx"]), red(d["dy"])
d["mask"] = (F.adaptive_avg_pool2d(torch.from_numpy(d["mask"].astype(np.float32))[None, None], S)[0, 0].numpy() > 0.5).astype(np.float32)
torch.manual_seed(0)
cfg = DetHConfig(**json.loads(sys.argv[5])) if len(sys.argv) > 5 else DetHConfig()
G = DetH(cfg)
opt = torch.optim.Adam(G.parameters(), lr, betas=(0.5, 0.99))
tr, ho = T.split(d["seed"], 10)
rng = np.random.default_rng(0)
B = T.Batches(d, tr, "cpu", rng, 50)
sigma = feature_sigma(S)
t0 = time.time()
for step in range(steps):
    bt = B.get(8)
    m = bt["uv_mask"]
    fake, hall, mask = G(**T._deth_inputs(bt, bt["dx"], bt["x"], bt["y"]))
    moving = ((bt["dy"] - bt["dx"]).abs() > 0.02).float() * m
    pf, pfm = T.phase_free(fake, bt["dy"], m, sigma, moving)
    l1 = T.masked_mean((fake - bt["dy"]).abs(), m)
    loss = 10 * pf + 10 * pfm + l1 + 0.02 * T.masked_mean(mask, m)
    opt.zero_grad(); loss.backward(); opt.step()
print(variant, "s/step", round((time.time() - t0) / steps, 3))
G.eval()
model = load_model(); rig = au_rig(model); au_of = np.array([c["au"] for c in rig])
uv = d["mask"]; regions = region_masks(model, S, names=list(REGION_AUS))
with torch.no_grad():
    outs = []
    for s in range(0, len(ho), 32):
        i = ho[s:s+32]; n = len(i)
        bt = {"uv_mask": torch.from_numpy(uv)[None, None].expand(n, -1, -1, -1), "identity": torch.from_numpy(np.pad(d["identity"][i], ((0,0),(0,0)))),
              "faceid": torch.zeros(n, 128), "has_faceid": torch.zeros(n, 1), "age": torch.from_numpy(d["age"][i].astype(np.float32))[:, None]}
        o = G(**T._deth_inputs(bt, torch.from_numpy(d["dx"][i])[:, None], torch.from_numpy(d["x"][i]), torch.from_numpy(d["y"][i])))[0]
        outs.append(o[:, 0].numpy())
out = np.concatenate(outs); y = d["y"][ho]; dy = d["dy"][ho]
res = []
for r, ra in REGION_AUS.items():
    t = y[:, np.isin(au_of, ra)].mean(1)
    e = _energy(out, regions[r] * uv); ep = _energy(dy, regions[r] * uv)
    res.append(f"{r[:5]} r={_pearson(e, t):+.2f} hi={e[t>0.6].mean():.3f}/{ep[t>0.6].mean():.3f}")
print(variant, " | ".join(res))
