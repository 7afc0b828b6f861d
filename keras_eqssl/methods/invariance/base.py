"""The base class of invariance losses: a Layer that owns its heads, returns named loss terms and registers itself.

A new invariance loss is one file: subclass `Invariance`, give it a `short_name`, and it is in
`INVARIANCES`, in the config (`config.model.invariance.<short_name>`, built from its
constructor's arguments; `config.model.invariance.name` picks one), in config validation, in
the factory and in the metrics (the mechanism: `keras_eqssl.methods.registry`).
"""

from __future__ import annotations

import keras

from keras_eqssl.methods.registry import ConfigSection
from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.mlp import MLP

TOTAL = "total"

# short_name -> Invariance subclass, filled by `Invariance.__init_subclass__` (import order).
INVARIANCES: dict[str, type] = {}


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Invariance(AttributeConfig, ConfigSection, keras.layers.Layer):
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

    Registration and config (class attributes of a subclass, see `keras_eqssl.methods.registry`):
        short_name: the registry key, the config section `config.model.invariance.<short_name>`
            and the metric prefix.
        choices, config_defaults, resume_apply: as `Objective`'s (`config_defaults` holds the
            loss's defaults in configs, e.g. a projector for small images).
        batch_need: why a batch of one pair cannot train it (its `batch_problems`), or "".

    Args:
        projector_units: list of int. The projector MLP (`[]` for none: the loss sees `h`).
        projector_last_bias: bool. Whether the projector's last Dense has a bias (VICReg/SIE: no).
        synchronized: bool. Synchronised BatchNorm in the heads under `tf.distribute`.
        **kwargs: standard `keras.layers.Layer` arguments.
    """

    config_attributes = ("projector_units", "projector_last_bias", "synchronized")
    config_as_lists = ("projector_units",)

    registry = INVARIANCES
    uses_target = False
    short_name = "ssl"
    batch_need = ""
    term_names: tuple[str, ...] = (TOTAL,)  # the keys `call` returns, known before any call (for metrics)
    # `projected_terms` exists: `PairModel` may project once and hand the projections to objectives (SIE's joint terms)
    shares_projections = False

    @classmethod
    def batch_problems(cls, per_replica_batch: int) -> list[str]:
        """A batch of one pair, for a loss with a `batch_need`: it needs at least 2 (across replicas)."""
        if per_replica_batch >= 2 or not cls.batch_need:
            return []
        return [f"{cls.__name__} needs at least 2 pairs per batch: {cls.batch_need}"]

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
