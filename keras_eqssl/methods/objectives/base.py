"""The base class of equivariance objectives: Layers that own their heads and return named losses."""

from __future__ import annotations

import keras

from keras_eqssl.methods.context import ModelContext

TOTAL = "total"


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Objective(keras.layers.Layer):
    """An auxiliary loss that `PairModel` adds to its invariance loss, times `weight`.

    `PairModel` calls `setup(context)` once at construction (check compatibility, raise a
    `ValueError` that says what is wrong, and build the heads), then, in every step,
    `objective(pair, training=...)` with

        pair = {"views":      {"v1": (B, H, W, 3), "v2": ...}   normalised views the encoder saw,
                "tokens":     {"v1": (B, N, d_equi), "v2": ...} equivariant tokens,
                "pooled":     {"v1": (B, d_equi), "v2": ...}    equivariant pooled vectors,
                "features":   {"v1": (B, C), "v2": ...}         the whole pooled representation,
                "batch":      the input batch ("params", "rel_rotation", "label", ...)}

    and it returns a dict of float32 scalars with a `"total"` (unweighted; the model multiplies
    it by `weight`) and any other terms to log. Values follow the replica convention of
    `keras_eqssl.losses` (global value / R).
    """

    short_name = "objective"

    def term_names(self) -> list[str]:
        """The keys `call` returns (known after `setup`), for metrics."""
        return [TOTAL]

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not weight >= 0:
            raise ValueError(f"{type(self).__name__}: weight must be >= 0; received {weight}")
        self.weight = float(weight)
        self.context: ModelContext | None = None

    def setup(self, context: ModelContext) -> None:
        """Checks the objective fits the model and builds its heads; raises ValueError if not."""
        self.context = context

    def build(self, input_shape=None):
        pass  # built by `setup`, which knows the shapes

    def build_from_config(self, config):
        pass  # PairModel builds it with the shapes it knows (when loading too)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}
