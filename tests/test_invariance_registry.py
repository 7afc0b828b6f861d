"""Adding an invariance loss is one class: defined here, it is registered, configurable, trained and saved.

The loss below lives only in this test module. Defining the class registers it (`INVARIANCES`);
`get_config()` then has its section `config.model.invariance.cosine_pull`, built from the
constructor's arguments with the loss's own defaults; config validation checks its `choices` and
its batch needs, resume applies its `resume_apply` arguments, and
`config.model.invariance.name="cosine_pull"` trains it. No other file of the library knows about it.
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
from keras_eqssl.methods import INVARIANCES, Invariance
from keras_eqssl.methods.invariance.base import TOTAL
from keras_eqssl.resume import rule_for


@pytest.fixture
def cosine_pull():
    """Defines (and so registers) the loss; unregisters it afterwards."""

    @keras.saving.register_keras_serializable(package="keras_eqssl_tests")
    class CosinePull(Invariance):
        """`scale * (1 - cos(g(h1), g(h2)))`, averaged (or the worst pair); logs the projections' spread."""

        short_name = "cosine_pull"
        term_names = (TOTAL, "spread")
        choices = {"reduction": ("mean", "max")}
        config_defaults = {"projector_units": (16, 8)}
        resume_apply = ("scale",)
        batch_need = "its spread is a standard deviation over the batch"

        def __init__(self, projector_units=(64, 32), scale: float = 1.0, reduction: str = "mean", **kwargs):
            super().__init__(projector_units=projector_units, **kwargs)
            self.scale, self.reduction = float(scale), reduction

        def terms(self, h1, h2, target, training=None) -> dict:
            z1, z2 = (ops.cast(self.project(h, training), "float32") for h in (h1, h2))
            cos = ops.sum(z1 * z2, axis=-1) / (ops.norm(z1, axis=-1) * ops.norm(z2, axis=-1) + 1e-6)
            distance = 1.0 - (ops.mean(cos) if self.reduction == "mean" else ops.min(cos))
            return {TOTAL: self.scale * distance, "spread": ops.mean(ops.std(z1, axis=0))}

        def get_config(self) -> dict:
            return {**super().get_config(), "scale": self.scale, "reduction": self.reduction}

    yield CosinePull
    INVARIANCES.pop("cosine_pull", None)


def test_defining_an_invariance_loss_gives_it_a_config_section(cosine_pull):
    assert INVARIANCES["cosine_pull"] is cosine_pull
    section = get_config().model.invariance.cosine_pull
    assert section.to_dict() == {
        "projector_units": "16-8",
        "scale": 1.0,
        "reduction": "mean",
        "projector_last_bias": True,
    }
    config = method_config("cosine_pull")
    assert config.model.invariance.name == "cosine_pull" and config.workdir == "runs/cosine_pull"
    validate(config)
    config.model.invariance.cosine_pull.reduction = "median"
    with pytest.raises(
        ConfigError, match=r"invariance.cosine_pull.reduction='median': must be one of \('mean', 'max'\)"
    ):
        validate(config)
    config.model.invariance.cosine_pull.reduction = "max"
    config.data.batch_size = 1
    with pytest.raises(ConfigError, match="CosinePull needs at least 2 pairs per batch: its spread is a standard dev"):
        validate(config)
    assert rule_for("model.invariance.cosine_pull.scale") == "apply"
    assert rule_for("model.invariance.cosine_pull.projector_units") == "refuse"


def test_the_config_builds_each_loss_with_its_section(cosine_pull):
    from keras_eqssl.methods.factory import model_from_config

    config = tiny(method_config("cosine_pull"), "/tmp/unused", "/tmp/unused")
    config.data.source = "skimage_photos"
    config.model.invariance.cosine_pull.update(scale=3.0, projector_units="8-4")
    model = model_from_config(config)
    loss = model.invariance
    assert type(loss) is cosine_pull and (loss.scale, loss.projector_units, loss.reduction) == (3.0, [8, 4], "mean")
    assert model.name == "cosine_pull" and "cosine_pull_spread" in model.term_names()
    config.model.invariance.name = "barlow"  # the built-in losses read their sections the same way
    config.model.invariance.barlow.update(lambd=0.01, projector_units="8-8")
    loss = model_from_config(config).invariance
    assert (type(loss).__name__, loss.lambd, loss.projector_units, loss.projector_last_bias) == (
        "BarlowTwins",
        0.01,
        [8, 8],
        False,
    )


def test_a_short_name_taken_by_another_loss_is_refused():
    with pytest.raises(ValueError, match=r"Invariance short_name 'vicreg' of .* is taken by .*vicreg\.VICReg"):

        class NotVICReg(Invariance):
            short_name = "vicreg"

    assert INVARIANCES["vicreg"].__name__ == "VICReg"


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_a_new_invariance_loss_trains_and_saves_from_a_config(cosine_pull, tmp_path):
    from keras_eqssl.cli.train import train

    config = tiny(method_config("vicreg"), tmp_path, tmp_path, steps=4, every=2)
    config.model.invariance.name = "cosine_pull"  # --config.model.invariance.name=cosine_pull
    config.model.invariance.cosine_pull.update(scale=2.0, reduction="max")
    config.data.source = "skimage_photos"
    config.train.deterministic = False
    validate(config)
    history = train(config)["history"]
    assert {"cosine_pull", "cosine_pull_spread"} <= set(history) and len(history["cosine_pull"]) == 2
    assert all(np.isfinite(v) for values in history.values() for v in values)
    model = keras.models.load_model(tmp_path / "model.keras")
    loss = model.invariance
    assert type(loss) is cosine_pull and (loss.scale, loss.reduction, loss.projector_units) == (2.0, "max", [16, 8])
