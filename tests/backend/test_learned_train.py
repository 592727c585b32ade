"""DetH training: a short run lowers the supervised losses on a fixed seed; resuming from a
checkpoint continues exactly where a straight run would be."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.learned.nets import DetHConfig
from backend.learned.train import data
from backend.learned.train import deth as train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Twelve real synthetic samples at 64² (the generator's own code, small maps)."""
    syn = data.Synth.load()
    samples = [syn.sample(s, size=64) for s in range(1, 13)]
    path = tmp_path_factory.mktemp("deth") / "synth_0000001.npz"
    data.write_shard(path, samples)
    return data.load_shards([path])


# warm-up (paired losses only) ends at step 12: the short run and the resumed one cross it
CFG = dict(batch=4, log_every=1, ckpt_every=10, holdout_every=1000, warmup=12, deth=DetHConfig(width=8, res_blocks=1))


def test_samples_are_paired_maps_of_one_person(tiny):
    assert tiny["dx"].shape == (12, 64, 64) and tiny["x"].shape == (12, 47)
    moved = np.abs(tiny["dx"].astype(np.float32) - tiny["dy"].astype(np.float32)).max(axis=(1, 2))
    same_expr = (tiny["x"] == tiny["y"]).all(1)
    assert (moved[same_expr] == 0).all(), "same expression, same person: the same map"
    assert (moved[~same_expr] > 0.01).mean() > 0.5, "different expressions wrinkle differently"


def test_short_run_lowers_the_supervised_losses(tiny, tmp_path):
    """On the texels the expression moves, DetH's phase-free distance to the target falls well
    below what copying the input scores, and the whole face's distance falls too (50 warm-up
    steps, where the recipe learns placement, then 10 of the full objective)."""
    train.train(tiny, tmp_path, train.TrainConfig(steps=60, **{**CFG, "warmup": 50}), device="cpu",
                log=lambda m: None)
    rows = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    vs_copy = [r["pf_move"] / max(r["copy_pf_move"], 1e-9) for r in rows]
    assert np.mean(vs_copy[-10:]) < 0.85 * np.mean(vs_copy[:10]), (np.mean(vs_copy[:10]), np.mean(vs_copy[-10:]))
    pf = [r["pf"] for r in rows]
    assert np.mean(pf[-10:]) < np.mean(pf[:10])
    assert all(np.isfinite(list(r.values())).all() for r in rows)


def test_resume_continues_exactly(tiny, tmp_path):
    straight, resumed = tmp_path / "a", tmp_path / "b"
    train.train(tiny, straight, train.TrainConfig(steps=14, **CFG), device="cpu", log=lambda m: None)
    train.train(tiny, resumed, train.TrainConfig(steps=10, **CFG), device="cpu", log=lambda m: None)
    said = []
    train.train(tiny, resumed, train.TrainConfig(steps=14, **CFG), device="cpu", log=said.append)
    assert said == ["resumed at step 10"]
    a = torch.load(straight / "checkpoint.pt", weights_only=False)["G"]
    b = torch.load(resumed / "checkpoint.pt", weights_only=False)["G"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
