"""The base class of invariance losses: a Layer that owns its heads and returns named loss terms."""

from __future__ import annotations

import keras

from keras_eqssl.nn.mlp import MLP

TOTAL = "total"


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Invariance(keras.layers.Layer):
    """A pair-based SSL loss with its projector (and predictor): `(h1, h2) -> {"total", ...terms}`.

    Subclasses build their heads in `build(feature_shape)` and implement `terms(h1, h2, target)`.
    `h1`, `h2` are the `(B, d_inv)` invariant representations of the two views; `target`, for
    methods with an EMA target network (`uses_target = True`), is the pair of the target
    network's `(B, d_inv)` representations, else None. Every value returned is a float32 scalar
    following the replica convention of `keras_eqssl.losses` (global value / R); `"total"` is
    what the model minimises, the other keys are logged.

    Losses with `shares_projections = True` (VICReg) also take `projections=(z1, z2)`, their
    projector's outputs for h1, h2 computed once by the caller, and return
    `projected_terms(z1, z2, target)`: `PairModel` does so when an objective uses the
    projections too (SIE's joint regularisation).

    Args:
        projector_units: list of int. The projector MLP (`[]` for none: the loss sees `h`).
        projector_last_bias: bool. Whether the projector's last Dense has a bias (VICReg/SIE: no).
        synchronized: bool. Synchronised BatchNorm in the heads under `tf.distribute`.
        **kwargs: standard `keras.layers.Layer` arguments.
    """

    uses_target = False
    short_name = "ssl"
    term_names: tuple[str, ...] = (TOTAL,)  # the keys `call` returns, known before any call (for metrics)
    # `projected_terms` exists: `PairModel` may project once and hand the projections to objectives (SIE's joint terms)
    shares_projections = False

    def __init__(
        self,
        projector_units=(2048, 2048, 2048),
        projector_last_bias: bool = True,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.projector_units = [int(u) for u in projector_units]
        self.projector_last_bias = bool(projector_last_bias)
        self.synchronized = bool(synchronized)
        self.projector = self._make_projector() if self.projector_units else None

    def _make_projector(self) -> MLP:
        return self._mlp(self.projector_units, "projector", use_last_bias=self.projector_last_bias)

    def _mlp(self, units, name, **kwargs) -> MLP:
        return MLP(units, synchronized=self.synchronized, name=name, dtype=self.dtype_policy, **kwargs)

    def project(self, h, training=None):
        return h if self.projector is None else self.projector(h, training=training)

    def build(self, feature_shape):
        if self.projector is not None:
            self.projector.build(feature_shape)

    def call(self, h1, h2, target=None, training=None, projections=None) -> dict:
        if projections is not None:  # (z1, z2): the projector's outputs, computed once by the caller
            terms = self.projected_terms(projections[0], projections[1], target, training=training)
        else:
            terms = self.terms(h1, h2, target, training=training)
        if TOTAL not in terms:
            raise ValueError(f"{type(self).__name__}.terms must return a {TOTAL!r} entry; got {sorted(terms)}")
        return terms

    def terms(self, h1, h2, target, training=None) -> dict:
        raise NotImplementedError

    def projected_terms(self, z1, z2, target, training=None) -> dict:
        """`terms` from the projections `z1, z2 = project(h1), project(h2)` (losses with `shares_projections`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot take its projections from the caller")

    def target_layers(self) -> list:
        """The heads the EMA target network copies (BYOL: the projector)."""
        return []

    def build_from_config(self, config):
        pass  # PairModel builds it with the shapes it knows (when loading too)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            projector_units=list(self.projector_units),
            projector_last_bias=self.projector_last_bias,
            synchronized=self.synchronized,
        )
        return config
