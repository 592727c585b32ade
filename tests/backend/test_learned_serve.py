"""Serving the learned nets: the shipped weights reproduce recorded outputs; maps made through
the backend's `details` and `wrinkles` paths name the nets, keep D(I_x) off the face, are exact
at animation keys; with DetH weights trained for real, a target AU changes the map in its region
and not elsewhere."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.core import exr_io
from backend.core.errors import BadRequestError
from backend.core.imaging import resample
from backend.core.progress import Job
from backend.detail import maps, registry
from backend.detail import rig as wrinkle_rig
from backend.detail.face import ReconstructedFace
from backend.learned import serve, sr, weights
from backend.learned.nets import DetH, DetHConfig
from backend.models import emotions
from backend.models.loader import load_model
from backend.models.regions import region_masks
from protocol.details import WrinkleRig
from protocol.job import FaceReconstruction


def build_details(*args, **kw) -> dict:
    return asdict(maps.build_details(*args, **kw))


def build_animation(*args, **kw) -> dict:
    return asdict(wrinkle_rig.build_animation(*args, **kw))


RECORDED = Path(__file__).resolve().parents[1] / "data" / "learned_recorded.npz"
BROWS = {"AU1L": 1.0, "AU1R": 1.0, "AU2L": 1.0, "AU2R": 1.0}
SMILE = {"AU12L": 1.0, "AU12R": 1.0}
SHIPPED_DETH = weights.available("deth", weights.SHIPPED)


def _pool(m: np.ndarray, n: int = 32) -> np.ndarray:
    k = m.shape[0] // n
    return m.reshape(n, k, n, k).mean(axis=(1, 3))


def recorded_outputs(rec: dict, folder=weights.SHIPPED) -> dict:
    """What the nets in ``folder`` give for the recorded input (RCAN always, DetH when there)."""
    rcan, _ = weights.load("rcan", folder)
    out = {"rcan": _pool(sr.upscale(rcan, rec["dx"].astype(np.float32)[96:160, 96:160]))}
    if weights.available("deth", folder):
        nets = serve.LearnedDetails(folder)
        d, m = nets.hallucinate(rec["dx"].astype(np.float32), rec["uv"].astype(np.float32), rec["x"], rec["y"][None],
                                rec["identity"], float(rec["age"]))
        out.update(deth=_pool(d[0]), mask=_pool(m[0]))
    return out


def test_shipped_weights_reproduce_recorded_outputs():
    """tests/data/learned_recorded.npz: a held-out synthetic sample's input and what the shipped
    nets gave for it when they were exported (scripts/record_learned.py)."""
    rec = dict(np.load(RECORDED))
    got = recorded_outputs(rec)
    assert set(got) == {k[4:] for k in rec if k.startswith("out_")}, "record again after shipping new nets"
    for k, v in got.items():
        np.testing.assert_allclose(v, rec[f"out_{k}"], atol=2e-4, err_msg=k)


def _weights(model, values: dict) -> np.ndarray:
    return emotions.weights_from_controls(emotions.au_rig(model), model.expression_names, values)


@pytest.fixture(scope="module")
def job(small_job):
    return small_job("learned_serve")


@pytest.fixture(scope="module")
def learned_dir(tmp_path_factory):
    """A weights folder with the shipped RCAN and an untrained DetH whose target-AU layers are
    randomised (the zero-initialised ones would ignore y): the serving plumbing, not quality."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(3)
    net = DetH(DetHConfig())
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "affine" in name:
                p.normal_(0.0, 0.3)
    weights.export(net, "deth", folder / "deth.safetensors", {"name": "deth-test", "uses_faceid": False})
    (folder / "rcan.safetensors").write_bytes(weights.path_for("rcan", weights.SHIPPED).read_bytes())
    return folder


@pytest.fixture()
def use_learned(learned_dir, monkeypatch):
    monkeypatch.setenv("FACEDET3D_WEIGHTS_DIR", str(learned_dir))
    return serve.get()


def test_served_map_names_the_nets_and_keeps_the_input_off_the_face(job, use_learned):
    model = load_model(FaceReconstruction.load(job).model_dir)
    info = build_details(str(job), expression=list(_weights(model, BROWS)), sizes=(256, 1024), detail_model="deth")
    assert info["model"] == "deth-test+rcan-synth-v3" == use_learned.name
    m256, m1024 = (exr_io.read_map(job / info["files"][k]) for k in ("256", "1024"))
    np.testing.assert_allclose(resample(m1024, 256), m256, atol=2e-3)  # one map, two sizes

    inp = serve.face_inputs(ReconstructedFace.open(job), Job())
    rig = emotions.au_rig(model)
    out = use_learned.map_for(inp, serve.controls_vector(rig, model.expression_names, _weights(model, BROWS))[None],
                              inp["age"])[0]
    face = inp["uv"] > 0.5
    assert 0.5 < face.mean() < 0.99, "the face covers most of its UV tile, not all"
    np.testing.assert_array_equal(out[~face], inp["dx"][~face])  # the nets learned nothing off the face
    assert np.abs(out - inp["dx"])[face].mean() > 1e-3


def test_deth_without_weights_says_so_and_auto_falls_back(job, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEDET3D_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(BadRequestError, match="not installed"):
        build_details(str(job), sizes=(256,), detail_model="deth")
    assert build_details(str(job), sizes=(256,), detail_model="auto")["model"] == "physical"
    with pytest.raises(BadRequestError, match="unknown detail model"):
        build_details(str(job), sizes=(256,), detail_model="neural")


def test_auto_takes_the_physical_model_while_the_shipped_deth_is_behind_it():
    """deth-synth-v2 ships and is available, but it is behind the crease generator on held-out
    identities (model card), so "auto" resolves to the physical model; DetH by name still works."""
    assert weights.metadata("deth")["info"]["name"] == "deth-synth-v2"
    assert registry.get("deth").availability().available
    assert registry.resolve("auto").name == "physical"


def test_learned_wrinkle_rig_is_exact_at_keys(job, use_learned):
    """B + Σ v W_c + C_k at a key is DetH's own map for the key's expression (half floats)."""
    res = build_animation(str(job), size=256, base_size=256, controls=list(BROWS),
                                      keys=[{"frame": 1, "values": BROWS}], detail_model="deth")
    assert res["model"] == use_learned.name and res["detail_model"] == "deth"
    packed = [c for p in res["packs"] for c in p["controls"]]
    assert packed and sorted(packed + res["skipped"]) == sorted(BROWS), "the randomised DetH moves the map"
    base = exr_io.read_map(job / res["base"]["file"])
    key = exr_io.read_map(job / res["keys"][0]["file"])
    shown = base + wrinkle_rig.mix(job, WrinkleRig.from_dict(res), BROWS) + key
    model = load_model(FaceReconstruction.load(job).model_dir)
    inp = serve.face_inputs(ReconstructedFace.open(job), Job())
    y = serve.controls_vector(inp["rig"], model.expression_names, _weights(model, BROWS))
    direct = use_learned.to_size(use_learned.map_for(inp, y[None], res["age_years"])[0], 256)
    np.testing.assert_allclose(shown, direct, atol=3e-3)


@pytest.mark.skipif(not SHIPPED_DETH, reason="no DetH weights in backend/learned/weights")
def test_shipped_deth_changes_the_map_where_the_target_aus_act(job):
    model = load_model(FaceReconstruction.load(job).model_dir)
    maps = {}
    for name, values in (("neutral", {}), ("brows", BROWS), ("smile", SMILE)):
        info = build_details(str(job), expression=list(_weights(model, values)), sizes=(256,), detail_model="deth")
        maps[name] = exr_io.read_map(job / info["files"]["256"])
    masks = {k: v > 0.5 for k, v in region_masks(model, 256, names=["forehead", "nasolabial", "elsewhere"]).items()}

    def rms(d, region):
        return float(np.sqrt(np.mean(d[masks[region]] ** 2)))

    brows, smile = maps["brows"] - maps["neutral"], maps["smile"] - maps["neutral"]
    assert rms(brows, "forehead") > 3 * rms(brows, "nasolabial"), "raised brows wrinkle the forehead"
    assert rms(smile, "nasolabial") > 2 * rms(smile, "forehead"), "a smile deepens the nasolabial folds"
    assert rms(brows, "elsewhere") < 0.25 * rms(brows, "forehead"), "and leave the lower cheeks and chin alone"


@pytest.mark.parametrize("creases_only", [True, False])
def test_large_maps_keep_rcans_creases_and_get_the_faces_fine_relief(use_learned, monkeypatch, creases_only):
    """RCAN runs up to SR_TOP² (lowered to 256 here so the test stays small; input 64²). Weights
    trained on creases alone (shipped, rcan-synth-v3): every larger map is RCAN's, plus the face's
    fine relief less what the input grid holds. Weights trained with pores (v2): above SR_TOP² the
    map is RCAN's upsampled plus only what the SR_TOP² grid cannot hold of the fine relief."""
    from backend.core.imaging import block_reduce

    monkeypatch.setattr(serve, "SR_TOP", 256)
    monkeypatch.setattr(serve.LearnedDetails, "creases_only", property(lambda self: creases_only))
    rec = dict(np.load(RECORDED))
    lr = rec["dx"].astype(np.float32)[96:160, 96:160]  # 64²
    rcan_out = sr.upscale(use_learned.rcan, lr)  # 256²
    fine = np.random.default_rng(0).normal(0.0, 0.01, (1024, 1024)).astype(np.float32)  # pore-scale relief
    out = use_learned.to_size(lr, 1024, fine=fine)
    plain = use_learned.to_size(lr, 1024)
    assert out.shape == plain.shape == (1024, 1024)
    up = lambda m, k: m.repeat(k, 0).repeat(k, 1)  # noqa: E731
    if creases_only:
        # RCAN's map (bicubic up, area down: nearly the identity) plus the fine relief above 64²
        want = rcan_out + block_reduce(fine, 4) - up(block_reduce(fine, 16), 4)
        np.testing.assert_allclose(block_reduce(out, 4), want, atol=0.004)
    else:  # at RCAN's size: RCAN's map
        np.testing.assert_allclose(block_reduce(out, 4), rcan_out, atol=0.004)
    # finer than 256²: the fine relief's, which the plain bicubic lacks
    hf = lambda m: m - up(block_reduce(m, 4), 4)  # noqa: E731
    assert np.corrcoef(hf(out).ravel(), hf(fine).ravel())[0, 1] > 0.95
    assert hf(out).std() > 5 * hf(plain).std()
    with pytest.raises(ValueError, match="multiple"):
        use_learned.to_size(lr, 1000, fine=np.zeros((1000, 1000), np.float32))


def test_a_large_deth_map_carries_the_faces_pores_and_fine_lines(job, use_learned):
    """Through `details`: what a 2048² DetH map holds finer than a 1024² grid is the face's own
    pores and fine lines, the physical model's (the old RCAN x2 path had 4 µm RMS there).
    Measured with rcan-synth-v3: r 0.89 with them, RMS 8.5 µm against their 7.5; the rest is
    the bicubic's own texel-scale content (this DetH is untrained: its map is rougher than a
    real one)."""
    from backend.core.imaging import block_reduce
    from backend.detail.creases import generator

    face = ReconstructedFace.open(job)
    ex = list(_weights(face.model, SMILE))
    deth = exr_io.read_map(job / build_details(str(job), expression=ex, sizes=(2048,), detail_model="deth")["files"]["2048"])
    micro = generator.face_micro_relief(face.model, face.identity, 2048, face.years())
    hf = lambda m: m - np.kron(block_reduce(m, 2), np.ones((2, 2), np.float32))  # noqa: E731
    on = micro != 0
    r = np.corrcoef(hf(deth)[on], hf(micro)[on])[0, 1]
    print(f"finer than 1024²: r {r:.3f}, RMS {hf(deth)[on].std():.4f} mm (micro relief {hf(micro)[on].std():.4f})")
    assert r > 0.7 and 0.8 < hf(deth)[on].std() / hf(micro)[on].std() < 1.6
