"""SimCLR: NT-Xent between the projections of the two views."""

from __future__ import annotations

import keras

from keras_eqssl.losses.nt_xent import NEGATIVES, nt_xent
from keras_eqssl.methods.invariance.base import TOTAL, Invariance
from keras_eqssl.nn.mlp import MLP

# The projector's end: no norm after the last Dense (SimCLR), a BN with gamma and beta, or a BN
# that only standardises (E-SSL's `BatchNorm1d(affine=False)`).
PROJECTOR_LAST_BN = ("none", "affine", "non_affine")


@keras.saving.register_keras_serializable(package="keras_eqssl")
class SimCLR(Invariance):
    """SimCLR's loss (Chen et al., ICML 2020): `nt_xent(g(h1), g(h2), temperature)`.

    Inputs `(B, d)` each; returns `{"total"}`. Negatives come from the global batch under
    `tf.distribute`. Use with `synchronized=True` on several replicas, as SimCLR's global BN.

    E-SSL's SimCLR (Dangovski et al., ICLR 2022, `rdangovs/essl`) is
    `SimCLR(temperature=0.5, negatives="cross_view", projector_last_bias=False,
    projector_last_bn="non_affine")`: the cross-view InfoNCE and a projector ending in
    `BatchNorm1d(affine=False)`.

    Args:
        projector_units: list of int. The projector MLP (`[]` for none).
        temperature: float > 0. NT-Xent's temperature.
        negatives: `"all"` (NT-Xent: the 2B - 2 other embeddings of both views, the default) or
            `"cross_view"` (E-SSL's `info_nce_loss`: the B - 1 others of the other view). See
            `keras_eqssl.losses.nt_xent`.
        projector_last_bn: `"none"` (the default: the projector ends in a Dense), `"affine"` (a BN
            with gamma and beta after it) or `"non_affine"` (a BN without them, E-SSL's).
        **kwargs: `Invariance` arguments (`projector_last_bias`, `synchronized`, ...).

    Example:
    >>> import numpy as np
    >>> loss = SimCLR(projector_units=[16, 8])
    >>> h = np.random.default_rng(0).normal(size=(4, 12)).astype("float32")
    >>> sorted(loss(h, h[::-1]))
    ['total']
    """

    short_name = "simclr"
    config_defaults = {"projector_units": (512, 128)}
    choices = {"negatives": NEGATIVES, "projector_last_bn": PROJECTOR_LAST_BN}
    resume_apply = ("temperature",)
    batch_need = "SimCLR's negatives are the batch's other pairs"

    def __init__(
        self,
        projector_units=(2048, 128),
        temperature: float = 0.1,
        negatives: str = "all",
        projector_last_bn: str = "none",
        **kwargs,
    ):
        if not temperature > 0:
            raise ValueError(f"SimCLR: temperature must be > 0; received {temperature}")
        self.check_choices(negatives=negatives, projector_last_bn=projector_last_bn)
        self._projector_last_bn = projector_last_bn  # read by _make_projector, which the base __init__ calls
        super().__init__(projector_units=projector_units, **kwargs)
        self.temperature = float(temperature)
        self.negatives = negatives
        self.projector_last_bn = projector_last_bn

    def _make_projector(self) -> MLP:
        last_bn = self._projector_last_bn
        return self._mlp(
            self.projector_units,
            "projector",
            use_last_bias=self.projector_last_bias,
            last_batch_norm=last_bn != "none",
            last_norm_affine=last_bn != "non_affine",
        )

    def terms(self, h1, h2, target, training=None) -> dict:
        z1, z2 = self.project(h1, training), self.project(h2, training)
        return {TOTAL: nt_xent(z1, z2, temperature=self.temperature, negatives=self.negatives)}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "negatives": self.negatives,
            "projector_last_bn": self.projector_last_bn,
        }
