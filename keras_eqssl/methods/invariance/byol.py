"""BYOL: an online predictor regresses the EMA target network's projection of the other view."""

from __future__ import annotations

import keras

from keras_eqssl.losses.negative_cosine import negative_cosine
from keras_eqssl.methods.invariance.base import TOTAL, Invariance


@keras.saving.register_keras_serializable(package="keras_eqssl")
class BYOL(Invariance):
    """BYOL (Grill et al., NeurIPS 2020): `L(q(g(h1)), g'(h2')) + L(q(g(h2)), g'(h1'))`, L = 2 - 2 cos.

    `h1'`, `h2'` come from the target backbone and `g'` is the target projector, both exponential
    moving averages of the online ones; `PairModel` keeps them and moves them after each optimizer
    step with momentum `byol_momentum(step, total_steps, base_momentum)`. Inputs `(B, d)` each;
    returns `{"total"}` in [0, 8].

    Args:
        projector_units, predictor_units: list of int (BYOL: 4096-256 both).
        base_momentum: tau_base of the cosine schedule (0.996; 0.99 for small batches).
        **kwargs: see `Invariance`.
    """

    uses_target = True
    short_name = "byol"
    config_defaults = {"projector_units": (512, 128), "predictor_units": (512, 128), "base_momentum": 0.99}
    resume_apply = ("base_momentum",)
    batch_need = "BYOL's projector and predictor BatchNorms normalise over the batch (1 pair: constant outputs)"

    def __init__(
        self, projector_units=(4096, 256), predictor_units=(4096, 256), base_momentum: float = 0.996, **kwargs
    ):
        super().__init__(projector_units=projector_units, **kwargs)
        if not self.projector_units:
            raise ValueError("BYOL needs a projector: projector_units must not be empty.")
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"BYOL: base_momentum must be in [0, 1]; received {base_momentum}")
        self.predictor_units = [int(u) for u in predictor_units]
        self.base_momentum = float(base_momentum)
        self.predictor = self._mlp(self.predictor_units, "predictor")
        self.target_projector = self._mlp(
            self.projector_units, "target_projector", use_last_bias=self.projector_last_bias
        )

    def build(self, feature_shape):
        super().build(feature_shape)
        self.target_projector.build(feature_shape)
        self.predictor.build((*feature_shape[:-1], self.projector_units[-1]))
        for t, o in zip(self.target_projector.weights, self.projector.weights):
            t.assign(o)  # stays trainable (batch statistics in training); PairModel never optimizes it

    def target_layers(self) -> list:
        return [(self.target_projector, self.projector)]

    def terms(self, h1, h2, target, training=None) -> dict:
        if target is None:
            raise ValueError("BYOL needs the target network's features; call it through PairModel.")
        t1, t2 = (self.target_projector(t, training=training) for t in target)
        p1 = self.predictor(self.project(h1, training), training=training)
        p2 = self.predictor(self.project(h2, training), training=training)
        loss = negative_cosine(p1, t2, variant="byol") + negative_cosine(p2, t1, variant="byol")
        return {TOTAL: loss}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "predictor_units": list(self.predictor_units),
            "base_momentum": self.base_momentum,
        }
