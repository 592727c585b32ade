"""The AU rig and the EMFACS presets the add-on animates with."""

from __future__ import annotations

import numpy as np
import pytest

from backend.models.emotions import EMFACS, au_rig, controls_from_weights, preset_controls
from backend.models.loader import load_model


@pytest.fixture(scope="module")
def model():
    return load_model()


def test_rig_drives_each_shape_once_and_splits_sides(model):
    rig = au_rig(model)
    shapes = [s for c in rig for s in c["shapes"]]
    assert len(shapes) == len(set(shapes))
    keys = {c["key"]: c for c in rig}
    assert keys["AU12L"]["shapes"] == ["mouthSmile_L"] and keys["AU12R"]["shapes"] == ["mouthSmile_R"]
    assert keys["AU30L"]["shapes"] == ["jawLeft"] and keys["AU30R"]["shapes"] == ["jawRight"]
    assert keys["AU61"]["shapes"] == ["eyeLookOut_L", "eyeLookIn_R"], "both eyes turn together"
    assert all(s in model.expression_names for s in shapes)


def test_presets_are_the_emfacs_prototypes(model):
    p = preset_controls(model)
    assert set(p) == set(EMFACS)
    on = {k: {a for a, v in vals.items() if v > 0} for k, vals in p.items()}
    assert on["happy"] == {"AU6L", "AU6R", "AU12L", "AU12R"}
    assert on["sad"] == {"AU1L", "AU1R", "AU4L", "AU4R", "AU15L", "AU15R"}
    assert on["disgust"] == {"AU9L", "AU9R", "AU15L", "AU15R", "AU16L", "AU16R"}
    assert on["contempt"] == {"AU12R", "AU14R"} and p["contempt"]["AU12R"] == pytest.approx(0.2)
    assert p["surprise"]["AU5L"] == pytest.approx(0.4) and p["surprise"]["AU27"] == pytest.approx(0.4)


def test_controls_reproduce_sided_weights_exactly(model):
    rig = au_rig(model)
    w = np.zeros(model.n_expressions)
    w[model.expression_index("mouthSmile_L")] = 0.8
    w[model.expression_index("browDown_R")] = 0.3
    c = controls_from_weights(rig, model.expression_names, w)
    assert c["AU12L"] == 0.8 and c["AU12R"] == 0.0 and c["AU4R"] == 0.3
