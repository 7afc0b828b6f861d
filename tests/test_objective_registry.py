"""Adding an objective is one class: defined here, it is registered, configurable, trained and saved.

The objective below lives only in this test module. Defining the class registers it
(`OBJECTIVES`); `get_config()` then has its section `config.model.view_match`, built from the
constructor's arguments; config validation checks its `choices`; the factory builds it and the
training job trains it from a config, logs its terms and saves a `.keras` that loads back. No
other file of the library knows about it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from train_helpers import tiny

from configs.common import method_config
from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import OBJECTIVES, Objective
from keras_eqssl.methods.objectives.base import TOTAL


@pytest.fixture
def view_match():
    """Defines (and so registers) the objective; unregisters it afterwards."""

    @keras.saving.register_keras_serializable(package="keras_eqssl_tests")
    class ViewMatch(Objective):
        """Predicts view 2's equivariant vector from view 1's with one Dense: MSE (or L1)."""

        short_name = "view_match"
        choices = {"distance": ("mse", "l1")}

        def __init__(self, weight: float = 0.5, distance: str = "mse", hidden_units=(8, 4), **kwargs):
            super().__init__(weight=weight, **kwargs)
            self.distance = distance
            self.hidden_units = [int(u) for u in hidden_units]

        def setup(self, context):
            super().setup(context)
            self.predictor = keras.layers.Dense(context.equivariant_dim, name="predictor")
            self.predictor.build((None, context.equivariant_dim))

        def term_names(self):
            return [TOTAL, "gap"]

        def call(self, pair, training=None):
            diff = self.predictor(pair["equivariant"]["v1"]) - pair["equivariant"]["v2"]
            loss = ops.mean(ops.square(diff)) if self.distance == "mse" else ops.mean(ops.abs(diff))
            return {TOTAL: ops.cast(loss, "float32"), "gap": ops.cast(ops.mean(ops.abs(diff)), "float32")}

        def get_config(self):
            return {**super().get_config(), "distance": self.distance, "hidden_units": self.hidden_units}

    yield ViewMatch
    OBJECTIVES.pop("view_match", None)


def test_defining_an_objective_gives_it_a_config_section(view_match):
    assert OBJECTIVES["view_match"] is view_match
    section = get_config().model.view_match
    assert section.to_dict() == {"enabled": False, "weight": 0.5, "distance": "mse", "hidden_units": "8-4"}
    config = method_config("vicreg", objectives=("view_match",))
    assert config.model.view_match.enabled and config.workdir == "runs/vicreg_view_match"
    config.model.view_match.distance = "cosine"
    with pytest.raises(ConfigError, match=r"config.model.view_match.distance='cosine': must be one of \('mse', 'l1'\)"):
        validate(config)
    config.model.view_match.distance = "l1"
    config.model.view_match.wieght = 1.0
    with pytest.raises(ConfigError, match="did you mean config.model.view_match.weight"):
        validate(config)


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_a_new_objective_trains_and_saves_from_a_config(view_match, tmp_path):
    from keras_eqssl.cli.train import train

    config = tiny(method_config("vicreg", objectives=("view_match",)), tmp_path, tmp_path, steps=4, every=2)
    config.data.source = "skimage_photos"
    config.model.view_match.distance = "l1"
    config.model.view_match.weight = 2.0
    config.train.deterministic = False
    validate(config)
    history = train(config)["history"]
    assert {"view_match", "view_match_gap"} <= set(history)
    assert all(np.isfinite(v) for values in history.values() for v in values)
    model = keras.models.load_model(tmp_path / "model.keras")
    (objective,) = model.objectives
    assert type(objective) is view_match and objective.distance == "l1" and objective.weight == 2.0
    assert objective.hidden_units == [8, 4]
