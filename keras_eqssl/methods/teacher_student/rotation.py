"""GTSA's rotation term: a head on each view's mean student token predicts the view's quarter turns."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_eqssl.losses.rotation_prediction import rotation_prediction
from keras_eqssl.methods.registry import parse_units
from keras_eqssl.methods.teacher_student.term import StepInputs, TeacherStudentTerm, TermContext
from keras_eqssl.nn.mlp import MLP


def mean_tokens(outputs: dict):
    """A backbone's outputs -> the mean of its patch tokens `(B, C)`."""
    return ops.mean(outputs["tokens"], axis=1)


def torch_linear_init(head) -> None:
    """Re-draws every Dense of `head` as PyTorch's default `nn.Linear` (kernel and bias U(+-1/sqrt(fan_in))):
    GTSA's rotation head is a plain `nn.Sequential` that its `_init_weights` never visits."""
    for dense in (d for d in head._flatten_layers() if isinstance(d, keras.layers.Dense)):
        bound = float(dense.kernel.shape[0]) ** -0.5
        for weight in (dense.kernel, dense.bias):
            weight.assign(keras.initializers.RandomUniform(-bound, bound)(weight.shape, weight.dtype))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class RotationTerm(TeacherStudentTerm):
    """GTSA's rotation prediction (`rotation`, and `rotation_accuracy`): a head on the mean student
    token of every view predicts its quarter turns `params[v]["rot90"]` (`rotation_prediction`).

    The head (`head`) is GTSA's rot_predictor: each hidden Dense of `units` is followed by a
    LayerNorm and, but for the last, a GELU; then a Dense(4). Its Dense layers start as PyTorch's
    default Linear, as GTSA's.

    Args:
        weight: its weight in the total.
        units: hidden units of the head; None or `""`: (2C, 2C, 128) for C-wide tokens.

    >>> RotationTerm(units="12-10-6").units
    (12, 10, 6)
    """

    short_name = "rotation"
    config_defaults = {"units": ""}
    views_params = ("rot90",)

    def __init__(self, weight: float = 0.5, units: Sequence[int] | str | None = None, **kwargs):
        super().__init__(weight, **kwargs)
        self.units = tuple(parse_units(units or ())) or None
        if self.units and min(self.units) < 1:
            raise ValueError(f"RotationTerm: units must be positive ints; received {self.units}")
        self.head = None

    @classmethod
    def config_rules(cls) -> dict:
        from keras_eqssl.config_fields import units

        return {"units": units}

    @classmethod
    def config_problems(cls, config) -> list[str]:
        if config.augment.gtsa.rotate:
            return []
        return [
            "config.model.teacher_student.rotation.weight > 0 predicts each crop's quarter turns, but "
            "config.augment.gtsa.rotate=False makes every crop upright; set one of them"
        ]

    def term_names(self) -> list[str]:
        return ["rotation", "rotation_accuracy"]

    def setup(self, context: TermContext) -> None:
        dim = context.feature_dim
        self.units = self.units or (2 * dim, 2 * dim, 128)
        # GTSA's rot_predictor: [Linear-LN-GELU] x 2, Linear-LN (no GELU), Linear(4).
        self.head = keras.Sequential(
            [
                MLP(
                    self.units,
                    norm="layer",
                    activation="gelu",
                    last_batch_norm=True,
                    name="rotation_mlp",
                    dtype=context.dtype,
                ),
                keras.layers.Dense(4, name="rotation_logits", dtype=context.dtype),
            ],
            name="rotation_head",
        )
        self.head.build((None, dim))
        torch_linear_init(self.head)

    def terms(self, inputs: StepInputs, training=False) -> dict:
        names, student, params = inputs.names, inputs.student, inputs.params
        pooled = ops.concatenate([mean_tokens(student[v]) for v in names], axis=0)
        labels = ops.concatenate([ops.reshape(params[v]["rot90"], (-1, 1)) for v in names], axis=0)
        out = rotation_prediction(self.head(pooled, training=training), labels)
        return {"rotation": out["total"], "rotation_accuracy": out["accuracy"]}

    def get_config(self) -> dict:
        return {**super().get_config(), "units": list(self.units) if self.units else None}
