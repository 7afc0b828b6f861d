"""Barlow Twins: the cross-correlation of the two projections pushed to the identity."""

from __future__ import annotations

import keras

from keras_eqssl.losses.barlow_twins import barlow_twins
from keras_eqssl.methods.invariance.base import TOTAL, Invariance


@keras.saving.register_keras_serializable(package="keras_eqssl")
class BarlowTwins(Invariance):
    """Barlow Twins (Zbontar et al., ICML 2021) on `g(h1), g(h2)` with off-diagonal weight `lambd`.

    Inputs `(B, d)` each; returns `{"total"}`. Statistics are over the global batch.

    Example:
    >>> import numpy as np
    >>> loss = BarlowTwins(projector_units=[16, 8])
    >>> h = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    >>> sorted(loss(h, h))
    ['total']
    """

    short_name = "barlow"
    config_defaults = {"projector_units": (512, 512, 512)}
    resume_apply = ("lambd",)
    batch_need = "Barlow Twins standardises each feature over the batch before its cross-correlation"

    def __init__(
        self, projector_units=(2048, 2048, 2048), lambd: float = 5e-3, projector_last_bias: bool = False, **kwargs
    ):
        super().__init__(projector_units=projector_units, projector_last_bias=projector_last_bias, **kwargs)
        self.lambd = float(lambd)

    def terms(self, h1, h2, target, training=None) -> dict:
        z1, z2 = self.project(h1, training), self.project(h2, training)
        return {TOTAL: barlow_twins(z1, z2, lambd=self.lambd)}

    def get_config(self) -> dict:
        return {**super().get_config(), "lambd": self.lambd}
