"""VICReg: invariance, variance and covariance terms on the projections."""

from __future__ import annotations

import keras

from keras_eqssl.losses.vicreg import vicreg
from keras_eqssl.methods.invariance.base import Invariance


@keras.saving.register_keras_serializable(package="keras_eqssl")
class VICReg(Invariance):
    """VICReg (Bardes et al., ICLR 2022) on `g(h1), g(h2)`; SIE's weights are sim 10, std 10, cov 1.

    Inputs `(B, d)` each; returns `{"total", "invariance", "variance", "covariance"}` (the three
    terms unweighted). Statistics are over the global batch under `tf.distribute`.

    Example:
    >>> import numpy as np
    >>> loss = VICReg(projector_units=[16, 8])
    >>> h = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    >>> sorted(loss(h, h))
    ['covariance', 'invariance', 'total', 'variance']
    """

    short_name = "vicreg"
    config_defaults = {"projector_units": (512, 512, 512)}
    resume_apply = ("sim_weight", "std_weight", "cov_weight")
    batch_need = "VICReg's variance and covariance terms are statistics over the batch"
    term_names = ("total", "invariance", "variance", "covariance")
    shares_projections = True  # PairModel may project once and pass the projections (SIE's joint terms)

    def __init__(
        self,
        projector_units=(2048, 2048, 2048),
        sim_weight: float = 25.0,
        std_weight: float = 25.0,
        cov_weight: float = 1.0,
        projector_last_bias: bool = False,
        **kwargs,
    ):
        super().__init__(projector_units=projector_units, projector_last_bias=projector_last_bias, **kwargs)
        self.sim_weight, self.std_weight, self.cov_weight = float(sim_weight), float(std_weight), float(cov_weight)

    def terms(self, h1, h2, target, training=None) -> dict:
        return self.projected_terms(self.project(h1, training), self.project(h2, training), target, training)

    def projected_terms(self, z1, z2, target, training=None) -> dict:
        return dict(vicreg(z1, z2, self.sim_weight, self.std_weight, self.cov_weight))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "sim_weight": self.sim_weight,
            "std_weight": self.std_weight,
            "cov_weight": self.cov_weight,
        }
