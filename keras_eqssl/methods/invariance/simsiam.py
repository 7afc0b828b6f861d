"""SimSiam: a predictor and a stop-gradient, symmetrised negative cosine."""

from __future__ import annotations

import keras

from keras_eqssl.losses.negative_cosine import negative_cosine
from keras_eqssl.methods.invariance.base import TOTAL, Invariance


@keras.saving.register_keras_serializable(package="keras_eqssl")
class SimSiam(Invariance):
    """SimSiam (Chen & He, CVPR 2021): `D(q(g(h1)), g(h2)) / 2 + D(q(g(h2)), g(h1)) / 2`, D = -cos.

    The projector ends with a BN (SimSiam's), the predictor is a bottleneck MLP. Inputs `(B, d)`
    each; returns `{"total"}` in [-1, 1].

    Example:
    >>> import numpy as np
    >>> loss = SimSiam(projector_units=[16, 8], predictor_units=[4, 8])
    >>> h = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    >>> sorted(loss(h, h))
    ['total']
    """

    short_name = "simsiam"
    config_defaults = {"projector_units": (512, 512, 512), "predictor_units": (128, 512)}
    batch_need = "SimSiam's projector and predictor BatchNorms normalise over the batch (1 pair: constant outputs)"

    def __init__(self, projector_units=(2048, 2048, 2048), predictor_units=(512, 2048), **kwargs):
        super().__init__(projector_units=projector_units, **kwargs)
        self.predictor_units = [int(u) for u in predictor_units]
        self.predictor = self._mlp(self.predictor_units, "predictor")

    def _make_projector(self):
        return self._mlp(
            self.projector_units, "projector", use_last_bias=self.projector_last_bias, last_batch_norm=True
        )

    def build(self, feature_shape):
        super().build(feature_shape)
        dim = self.projector_units[-1] if self.projector_units else feature_shape[-1]
        self.predictor.build((*feature_shape[:-1], dim))

    def terms(self, h1, h2, target, training=None) -> dict:
        z1, z2 = self.project(h1, training), self.project(h2, training)
        p1, p2 = self.predictor(z1, training=training), self.predictor(z2, training=training)
        return {TOTAL: negative_cosine(p1, z2) / 2.0 + negative_cosine(p2, z1) / 2.0}

    def get_config(self) -> dict:
        return {**super().get_config(), "predictor_units": list(self.predictor_units)}
