"""The learned nets' command line end to end on tiny real synthetic data: synth -> train (DetH,
RCAN, AU regressor) -> export -> eval, and what the tools say about wrong files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.detail.stats import RegionStats, WrinkleStats
from backend.learned import sr, weights
from backend.learned.nets import RCAN
from backend.learned.train import data
from backend.learned.train.evaluate import crease_errors, evaluate_rcan
from backend.service.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two identities (seed 10 held out, 11 trained on), four expressions each, 64² maps; each net
    trained a few steps and exported."""
    root = tmp_path_factory.mktemp("learned")
    assert main(["synth", "--out", str(root / "d"), "--n", "2", "--start", "10", "--size", "64"]) == 0
    for net in ("deth", "rcan", "aureg"):
        steps = [] if net == "aureg" else ["--steps", "4", "--batch", "2"]  # aureg: closed form
        assert main(["train", net, "--data", str(root / "d"), "--out", str(root / net)] + steps
                    + (["--patch", "32"] if net == "rcan" else [])) == 0
        assert main(["export", net, "--run", str(root / net), "--data", str(root / "d"),
                     "--to", str(root / "w" / f"{net}.safetensors")]) == 0
    return root


def test_chained_pairs_of_one_identity(run):
    d = data.load_shards(sorted((run / "d").glob("synth_*.npz")))
    assert d["dx"].shape == (8, 64, 64) and list(d["seed"]) == [10] * 4 + [11] * 4
    for s in range(0, 8, 4):  # e0→e1→e2→e3→e0: each target is the next pair's source
        for i in range(4):
            assert np.array_equal(d["dy"][s + i], d["dx"][s + (i + 1) % 4])
            assert np.array_equal(d["y"][s + i], d["x"][s + (i + 1) % 4])


def test_exported_weights_carry_their_provenance(run):
    net, meta = weights.load("deth", run / "w")
    info = meta["info"]
    assert info["name"] == "deth-deth" and info["steps"] == 4
    assert info["data"] == {"samples": 8, "size": 64, "seeds": [10, 11], "source": "synthetic",
                            "micro": True}
    ck = torch.load(run / "deth" / "checkpoint.pt", weights_only=False)["G"]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, ck[k])


def test_eval_figures(run):
    out = run / "fig.json"
    assert main(["eval", "--data", str(run / "d"), "--hr-data", str(run / "d"), "--weights", str(run / "w"),
                 "--out", str(out)]) == 0
    f = json.loads(out.read_text())
    d = data.load_shards(sorted((run / "d").glob("synth_*.npz")))
    held = d["seed"] % 10 == 0
    assert f["held_out_samples"] == int(held.sum()) == 4
    on = d["mask"] > 0.5
    none_l1 = np.abs(d["dx"][held].astype(np.float32) - d["dy"][held].astype(np.float32))[:, on].mean()
    assert f["l1"]["physical"] == 0.0 == f["l1_moving"]["physical"]
    assert f["l1_moving"]["none"] > f["l1"]["none"], "the moving texels are where copying errs"
    assert f["l1"]["none"] == pytest.approx(none_l1, abs=1e-5)
    assert f["outside"]["none"] == {"still_mm": 0.0, "moving_mm": 0.0}
    for m in ("deth", "physical", "none"):
        assert 0.0 <= f["au"][m]["mae_all"] <= 1.0 and len(f["au"][m]["per_au"]) == 28
    # RCAN after 4 steps is still almost bicubic (its residual starts at zero)
    assert abs(f["rcan"]["rcan"]["psnr_db"] - f["rcan"]["bicubic"]["psnr_db"]) < 1.0
    assert {"crease_width_error_mm", "crease_depth_error_mm", "crease_regions_found"} <= set(f["rcan"]["rcan"])


def test_rcan_eval_leaves_maps_without_relief_out_of_psnr(run, tmp_path):
    """A neutral face's crease map is all zeros: PSNR has no peak there (bicubic's exact zero would
    score the floor's 200 dB), so such a map is reported by what each method puts on it."""
    d = data.load_shards(sorted((run / "d").glob("synth_*.npz")))
    held = np.flatnonzero(d["seed"] % 10 == 0)
    d["dx"][held[0]] = 0.0
    samples = [{k: d[k][i] for k in ("dx", "dy", "x", "y", "age", "identity", "seed")} | {"mask": d["mask"]}
               for i in range(len(d["seed"]))]
    data.write_shard(tmp_path / "synth_0000010.npz", samples)
    f = evaluate_rcan(str(tmp_path), run / "w", log=lambda *a: None)
    assert f["maps"] == 2 * len(held) and f["maps_without_relief"] == 1
    assert f["bicubic"]["max_on_maps_without_relief_um"] == 0.0
    assert 0.0 <= f["rcan"]["max_on_maps_without_relief_um"] < 1.0
    for k in ("rcan", "bicubic"):
        assert 20.0 < f[k]["psnr_db"] < 120.0, "the mean over maps with relief, no 200 dB floor in it"


def test_crease_errors_compare_regions_the_reference_creases():
    def stats(**regions):
        empty = RegionStats(0, None, None, None, None, None, None, None, None)
        full = {name: empty for name in ("forehead", "glabella", "elsewhere")}
        for name, (width, depth) in regions.items():
            full[name] = RegionStats(2, 8.0, 50.0, 60.0, depth, depth, width, 0.0, 0.0)
        return WrinkleStats(0.3, full)

    ref = stats(forehead=(1.0, 0.2), glabella=(1.2, 0.3), elsewhere=(2.0, 0.1))
    got = stats(forehead=(1.5, 0.1))
    e = crease_errors(ref, got)
    assert e["found"] == [1.0, 0.0], "forehead found, glabella missed; 'elsewhere' is not a crease region"
    assert e["width"] == [pytest.approx(0.5)] and e["depth"] == [pytest.approx(0.1)]


def test_wrong_weight_files_say_what_is_wrong(run, tmp_path, capsys):
    (tmp_path / "rcan.safetensors").write_bytes((run / "w" / "deth.safetensors").read_bytes())
    with pytest.raises(ValueError, match="holds deth weights, not rcan"):
        weights.load("rcan", tmp_path)
    with pytest.raises(FileNotFoundError, match="no aureg weights"):
        weights.load("aureg", tmp_path)
    (tmp_path / "deth.safetensors").write_bytes((run / "w" / "deth.safetensors").read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors file.*re-export"):
        weights.load("deth", tmp_path)
    (tmp_path / "deth.safetensors").unlink()
    with pytest.raises(SystemExit, match="no synth_\\*.npz shards"):
        main(["train", "deth", "--data", str(tmp_path), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="closed form"):
        main(["train", "aureg", "--data", str(run / "d"), "--out", str(tmp_path / "x"), "--steps", "4"])
    assert main(["eval", "--data", str(run / "d"), "--weights", str(tmp_path)]) == 1
    assert "no deth weights at" in capsys.readouterr().err


def test_tiled_upscale_matches_the_whole_map():
    """Tiles leave no seams: the convolutions see past every cut; only channel attention's
    per-tile mean differs."""
    torch.manual_seed(0)
    net = RCAN().eval()
    torch.nn.init.normal_(net.tail[-1].weight, std=0.05)
    m = np.random.default_rng(1).normal(0.0, 0.1, (160, 160)).astype(np.float32)
    whole = sr.upscale(net, m, tile=160)
    tiled = sr.upscale(net, m, tile=96, overlap=32)
    assert tiled.shape == (640, 640)
    res = whole - sr.upscale(RCAN().eval(), m, tile=160)  # what the net adds to bicubic
    assert np.abs(tiled - whole).max() < 0.01 * np.abs(res).max()


def test_maps_without_micro_relief_are_flagged_and_kept_apart(run, tmp_path):
    """`synth --no-micro` (RCAN v3's data): the same identity's maps less its pores and fine lines,
    flagged in the shards; shards of both kinds do not mix; an RCAN export must name its data."""
    for name, extra in (("bare", ["--no-micro"]), ("full", [])):  # 256²: a 64² map holds no micro relief
        assert main(["synth", "--out", str(tmp_path / name), "--n", "1", "--start", "10", "--size", "256",
                     "--expressions", "2"] + extra) == 0
    bare, full = (data.load_shards(sorted((tmp_path / n).glob("synth_*.npz"))) for n in ("bare", "full"))
    assert bare["micro"] is False and full["micro"] is True
    pores = full["dx"].astype(np.float32) - bare["dx"].astype(np.float32)
    assert pores[:, bare["mask"]].std() > 1e-4 and np.array_equal(full["x"], bare["x"])  # 0.29 µm at 256²
    with pytest.raises(ValueError, match="mix"):
        data.load_shards(sorted((tmp_path / "full").glob("synth_*.npz")) + sorted((tmp_path / "bare").glob("synth_*.npz")))
    with pytest.raises(SystemExit, match="--data"):
        main(["export", "rcan", "--run", str(run / "rcan"), "--to", str(tmp_path / "r.safetensors")])
