"""SimCLR: NT-Xent between the projections of the two views."""

from __future__ import annotations

import keras

from keras_eqssl.losses.nt_xent import nt_xent
from keras_eqssl.methods.invariance.base import TOTAL, Invariance


@keras.saving.register_keras_serializable(package="keras_eqssl")
class SimCLR(Invariance):
    """SimCLR's loss (Chen et al., ICML 2020): `nt_xent(g(h1), g(h2), temperature)`.

    Inputs `(B, d)` each; returns `{"total"}`. Negatives come from the global batch under
    `tf.distribute`. Use with `synchronized=True` on several replicas, as SimCLR's global BN.

    Example:
    >>> import numpy as np
    >>> loss = SimCLR(projector_units=[16, 8])
    >>> h = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    >>> sorted(loss(h, h[::-1]))
    ['total']
    """

    short_name = "simclr"

    def __init__(self, projector_units=(2048, 128), temperature: float = 0.1, **kwargs):
        super().__init__(projector_units=projector_units, **kwargs)
        if not temperature > 0:
            raise ValueError(f"SimCLR: temperature must be > 0; received {temperature}")
        self.temperature = float(temperature)

    def terms(self, h1, h2, target, training=None) -> dict:
        z1, z2 = self.project(h1, training), self.project(h2, training)
        return {TOTAL: nt_xent(z1, z2, temperature=self.temperature)}

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
