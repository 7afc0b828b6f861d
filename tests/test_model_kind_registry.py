"""Adding a model kind is one class: defined here, it is registered, configurable, trained and saved.

The `SSLModel` subclass below lives only in this test module. Its `kind` registers it
(`MODEL_KINDS`); `get_config()` then has its section `config.model.mean_match`
(`config_section`), config validation runs its `config_rules`, `config_problems` and
`batch_problems`, resume follows its `resume_rules`, and `config.model.method="mean_match"`
trains it with the training job (`from_run_config`). No other file of the library knows about it.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from train_helpers import tiny

from keras_eqssl.config_validation import validate
from keras_eqssl.default_config import get_config
from keras_eqssl.errors import ConfigError
from keras_eqssl.methods import MODEL_KINDS, SSLModel
from keras_eqssl.resume import rule_for


@pytest.fixture
def mean_match():
    """Defines (and so registers) the model kind; unregisters it afterwards."""

    @keras.saving.register_keras_serializable(package="keras_eqssl_tests")
    class MeanMatch(SSLModel):
        """Pulls the two views' pooled vectors together; a hinge keeps each channel's spread over the batch."""

        kind = "mean_match"

        @classmethod
        def config_section(cls) -> dict:
            return {"weight": 1.0, "floor": {"enabled": True, "target": 1.0}}

        @classmethod
        def config_rules(cls) -> dict:
            return {"model.mean_match.weight": lambda v: "must be >= 0" if v < 0 else None}

        @classmethod
        def config_problems(cls, config) -> list[str]:
            if tuple(config.model.split) != (0, 0):
                return [f"config.model.split={tuple(config.model.split)}: mean_match uses the whole vector; set (0, 0)"]
            return []

        @classmethod
        def batch_problems(cls, config, per_replica_batch: int) -> list[str]:
            floor = config.model.mean_match.floor.enabled
            return ["the floor needs 2 images per replica"] if floor and per_replica_batch < 2 else []

        @classmethod
        def resume_rules(cls) -> dict:
            return {"model.mean_match.weight": "apply"}

        @classmethod
        def from_run_config(cls, config, backbone, *, mean, std, param_specs, synchronized):
            section = config.model.mean_match
            return cls(
                backbone,
                weight=section.weight,
                floor=section.floor.target if section.floor.enabled else 0.0,
                image_size=config.augment.size,
                mean=mean,
                std=std,
                total_steps=config.train.steps,
                name=cls.run_name(config),
            )

        def __init__(self, backbone, weight: float = 1.0, floor: float = 1.0, **kwargs):
            super().__init__(backbone, **kwargs)
            self.weight, self.floor = float(weight), float(floor)
            self.track_terms()

        def term_names(self):
            return ["match", "spread"]

        def compute_losses(self, batch, training=False):
            a, b = (
                ops.cast(self.backbone(self.normalize(batch["views"][v]), training=training)["pooled"], "float32")
                for v in ("v1", "v2")
            )
            match = ops.mean(ops.square(a - b))
            spread = ops.mean(ops.relu(self.floor - ops.std(a, axis=0)))
            return self.weight * match + spread, {"match": match, "spread": spread}

        def get_config(self):
            return {**super().get_config(), "weight": self.weight, "floor": self.floor}

    yield MeanMatch
    MODEL_KINDS.pop("mean_match", None)


def _config(tmp_path):
    config = tiny(get_config(), tmp_path, tmp_path, steps=4, every=2)
    config.model.method = "mean_match"  # --config.model.method=mean_match
    config.model.split = (0, 0)
    config.model.recon.enabled = False
    config.data.source = "skimage_photos"
    return config


def test_defining_a_model_kind_gives_it_a_config_section_and_checks(mean_match, tmp_path):
    assert MODEL_KINDS["mean_match"] is mean_match and MODEL_KINDS["pair"].__name__ == "PairModel"
    assert get_config().model.mean_match.to_dict() == {"weight": 1.0, "floor": {"enabled": True, "target": 1.0}}
    config = _config(tmp_path)
    validate(config)
    config.model.mean_match.weight = -1.0
    with pytest.raises(ConfigError, match=r"config.model.mean_match.weight=-1.0: must be >= 0"):
        validate(config)
    config.model.mean_match.weight = 1.0
    config.model.split = (16, 16)
    with pytest.raises(ConfigError, match=r"mean_match uses the whole vector"):
        validate(config)
    config.model.split = (0, 0)
    config.data.batch_size = 1
    with pytest.raises(ConfigError, match=r"config.data.batch_size=1: the floor needs 2 images per replica"):
        validate(config)
    config.model.mean_match.floor.enabled = False
    validate(config)
    assert rule_for("model.mean_match.weight") == "apply"
    assert rule_for("model.mean_match.floor.target") == "refuse"


def test_the_training_job_checks_each_replica_batch_with_the_kind(mean_match, tmp_path):
    from keras_eqssl.cli.train import _check_replica_batch

    config = _config(tmp_path)
    config.data.batch_size = 4
    _check_replica_batch(config, 2)
    with pytest.raises(ConfigError, match=r"batch_size=4 over 4 replica\(s\) with the floor needs 2 images"):
        _check_replica_batch(config, 4)


def test_a_kind_taken_by_another_class_is_refused():
    with pytest.raises(ValueError, match=r"SSLModel kind 'pair' of .* is taken by .*pair_model\.PairModel"):

        class NotPair(SSLModel):
            kind = "pair"

    assert MODEL_KINDS["pair"].__name__ == "PairModel"


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_a_new_model_kind_trains_and_saves_from_a_config(mean_match, tmp_path):
    from keras_eqssl.cli.train import train

    config = _config(tmp_path)
    config.model.mean_match.weight = 2.0
    config.train.deterministic = False
    validate(config)
    history = train(config)["history"]
    assert {"loss", "match", "spread"} <= set(history) and len(history["match"]) == 2
    assert all(np.isfinite(v) for values in history.values() for v in values)
    model = keras.models.load_model(tmp_path / "model.keras")
    assert type(model) is mean_match and (model.name, model.weight, model.floor) == ("mean_match", 2.0, 1.0)
