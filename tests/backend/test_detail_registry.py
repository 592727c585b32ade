"""The detail-model registry: a model added as one module plus one registration line (here an
entry point of a separate package, as a plugin would) is offered everywhere the built-in ones are:
the RPC health answer, the `details` method, the command line's choices; a model that cannot
load is reported, not fatal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from backend.core import exr_io
from backend.core.errors import BadRequestError
from backend.detail import registry
from backend.detail.maps import build_details
from backend.service import cli
from protocol import rpc
from protocol.details import AUTO_MODEL

REPO = Path(__file__).resolve().parents[2]
TOY = '''
import numpy as np

from backend.detail.registry import Availability, DetailMaker, DetailModel


class ToyMaker(DetailMaker):
    made_by = tag_variant = "toy-v1"
    progress_message = "Toy details"

    def __init__(self, face, years, seed, job):
        self.face = face

    def detail_map(self, weights, size, job):
        return np.full((size, size), 0.25, np.float32)

    def wrinkles(self, values, size):
        return np.full((size, size), 0.5 * sum(values.values()), np.float32)


class ToyModel(DetailModel):
    name = "toy"
    label = "Toy"
    description = "A flat 0.25 mm offset (a test plugin)"

    def availability(self):
        return Availability(True, made_by="toy-v1")

    def open(self, face, years, seed, job):
        return ToyMaker(face, years, seed, job)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """A package that adds a detail model through the entry-point group, as pip would install it."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "toy_detail.py").write_text(TOY, encoding="utf-8")
    info = root / "toy_detail-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-detail\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\ntoy = toy_detail:ToyModel\n",
                                           encoding="utf-8")
    return root


def _env(plugin: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(plugin)])
    return env


@pytest.fixture(scope="module")
def job(small_job):
    return small_job("registry")


def test_the_plugin_is_offered_over_rpc_and_makes_the_maps(plugin, job):
    """health lists it (after auto, with the built-in ones); a `details` request naming it is
    answered with maps made by it; an unknown name is refused naming the choices."""
    requests = [("health", {}), ("details", {"job_dir": str(job), "sizes": [256], "model": "toy"}),
                ("details", {"job_dir": str(job), "model": "nope"})]
    p = subprocess.Popen([sys.executable, "-m", rpc.SERVER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=_env(plugin))
    answers = {}
    try:
        for i, (method, params) in enumerate(requests, 1):  # one at a time: each answered before the next
            p.stdin.write(json.dumps(rpc.request(i, method, params)) + "\n")
            p.stdin.flush()
            while i not in answers:
                msg = json.loads(p.stdout.readline())  # progress notifications have no id
                if "id" in msg:
                    answers[msg["id"]] = msg
    finally:
        p.stdin.close()
        p.wait(timeout=60)
    health = answers[1]["result"]
    names = [m["name"] for m in health["detail_models"]]
    assert names[0] == AUTO_MODEL and {"physical", "deth", "toy"} <= set(names), names
    toy = next(m for m in health["detail_models"] if m["name"] == "toy")
    assert toy["available"] and toy["made_by"] == "toy-v1" and toy["label"] == "Toy"
    info = answers[2]["result"]
    assert info["model"] == "toy-v1"
    m = exr_io.read_map(Path(info["job_dir"]) / info["files"]["256"])
    np.testing.assert_allclose(m, 0.25, atol=1e-3)
    assert answers[3]["error"]["code"] == -32602 and "toy" in answers[3]["error"]["message"]


def test_the_command_line_offers_the_plugin(plugin, job):
    listed = subprocess.run([sys.executable, "-m", "backend", "models"], capture_output=True, text=True, cwd=REPO,
                            env=_env(plugin), timeout=300)
    assert listed.returncode == 0 and "toy" in listed.stdout and "A flat 0.25 mm offset" in listed.stdout
    made = subprocess.run([sys.executable, "-m", "backend", "details", "--job", str(job), "--model", "toy",
                           "--sizes", "256"], capture_output=True, text=True, cwd=REPO, env=_env(plugin), timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert json.loads(made.stdout)["model"] == "toy-v1"
    # without the plugin the same choice is refused by the command line itself
    refused = subprocess.run([sys.executable, "-m", "backend", "details", "--job", str(job), "--model", "toy"],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
    assert refused.returncode == 2 and "invalid choice: 'toy'" in refused.stderr


class _Flat(registry.DetailModel):
    name, label, description, priority = "flat", "Flat", "nothing at all (in-process test)", 99

    def availability(self):
        return registry.Availability(True, made_by="flat")

    def open(self, face, years, seed, job):
        class Maker(registry.DetailMaker):
            made_by = tag_variant = "flat"

            def detail_map(self, weights, size, job):
                return np.zeros((size, size), np.float32)

            def wrinkles(self, values, size):
                return np.zeros((size, size), np.float32)
        return Maker()


def test_registering_in_process_reaches_the_cli_and_auto(job):
    registry.register(_Flat())
    try:
        assert "flat" in registry.names()
        assert "flat" in cli.parser().parse_args(["details", "--job", "x", "--model", "flat"]).model
        assert registry.resolve(AUTO_MODEL).name == "flat", "auto takes the available model of highest priority"
        info = build_details(str(job), sizes=(256,), detail_model=AUTO_MODEL)
        assert info.model == "flat" and not exr_io.read_map(job / info.files["256"]).any()
    finally:
        registry.unregister("flat")
    assert "flat" not in registry.names()
    with pytest.raises(BadRequestError, match="unknown detail model 'flat'; one of auto, physical"):
        registry.get("flat")


def test_a_model_that_cannot_load_is_reported_not_fatal(monkeypatch):
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "BUILTIN", registry.BUILTIN + ("backend.no_such_module:Nothing",))
    monkeypatch.setattr(registry, "_failed", {})
    infos, auto = registry.describe()
    broken = next(m for m in infos if m.name == "backend.no_such_module:Nothing")
    assert not broken.available and "No module named" in broken.reason
    assert auto in ("physical", "deth") and asdict(infos[0])["name"] == AUTO_MODEL
