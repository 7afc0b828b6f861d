"""STL: a transformation representation learned from aligned pairs drives a hypernetwork's equivariant map."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.augment.policies.stl import check_pairs
from keras_eqssl.losses.nt_xent import nt_xent
from keras_eqssl.methods.objectives.base import TOTAL, Objective, check_non_negative, units_argument
from keras_eqssl.nn.hypernetwork import TORCH_LINEAR, LinearHypernetwork
from keras_eqssl.nn.mlp import MLP

FEATURES = ("equivariant", "all")
HYPERNETWORK_INITS = (TORCH_LINEAR, "glorot_uniform")


def partner_swap(x):
    """`(B, ...) -> (B, ...)`: row i replaced by its pair partner, rows `[1, 0, 3, 2, ...]` (B even)."""
    x = check_pairs(x)
    return tf.gather(x, tf.bitwise.bitwise_xor(tf.range(tf.shape(x)[0]), 1), axis=0)


def pair_halves(x):
    """`(B, ...) -> ((B/2, ...), (B/2, ...))`: the even rows (images A_i) and the odd rows (B_i)."""
    x = check_pairs(x)
    return x[0::2], x[1::2]


@keras.saving.register_keras_serializable(package="keras_eqssl")
class STL(Objective):
    """Self-supervised Transformation Learning (Yu, Choi, Lee, Hong, Kim, NeurIPS 2024, arXiv 2501.08712).

    After the official code (`jaemyung-u/stl`, `model.py`). The batch holds aligned pairs: images
    2i and 2i+1 are different images that got the same transformation t1 in view 1 and the same t2
    in view 2 (the `stl` augmentation policy). With y1, y2 `(B, d)` the representations of the views:

        u12 = g(concat[y1, y2]);  u21 = g(concat[y2, y1])          (B, k) transformation codes
        y1_hat = W(u21[swap]) y2;  y2_hat = W(u12[swap]) y1       (B, d) the partner's code, swap = [1,0,3,2,...]
        L_equi  = NT-Xent(concat[P_eq(y1), P_eq(y2)], concat[P_eq(y1_hat), P_eq(y2_hat)])   2B rows
        u_A = concat[u12[even], u21[even]];  u_B = concat[u12[odd], u21[odd]]              (B, k)
        L_trans = NT-Xent(P_t(u_A), P_t(u_B))                     row i of u_A pairs with row i of u_B

    g is an MLP on `(B, 2d)`, `W(u)` a `LinearHypernetwork(d)` (`Dense(k -> d*d)` reshaped), P_eq and
    P_t projectors; every MLP ends in a Dense without bias and every call normalises with its own
    batch statistics, as the official code does. There is no stop-gradient: gradients reach the
    backbone, g, the hypernetwork and both projectors.

    STL's loss is `1.0 * L_inv + 1.0 * L_equi + 0.1 * L_trans`, where L_inv = NT-Xent(P_inv(y1),
    P_inv(y2)) is SimCLR's invariance loss: `PairModel`'s invariance term with `invariance="simclr"`,
    temperature 0.2 and a 512-128 projector. This objective adds the other two:
    `total = equi_weight * L_equi + trans_weight * L_trans` (times `weight` in `PairModel`).

    The batch (per replica under `tf.distribute`) must be even; odd batches are an error. Negatives
    come from the global batch (`nt_xent`).

    Args:
        weight: the weight `PairModel` gives the total.
        equi_weight: the weight of L_equi in the total (STL: 1.0).
        trans_weight: the weight of L_trans in the total (STL: 0.1).
        temperature: NT-Xent temperature of both losses (STL: 0.2, shared with L_inv).
        projector_units: P_eq's units (STL: 512-128).
        transform_units: g's units; the last is k, the code width (STL: 128-128).
        transform_projector_units: P_t's units (STL: 128-128).
        features: y is `"equivariant"` (`pair["equivariant"]`: the split's equivariant part, the whole
            representation without a split) or `"all"` (`pair["features"]`, the whole vector).
        hypernetwork_init: the hypernetwork kernel's initializer: `"torch_linear"` (the official
            code's `nn.Linear` default, uniform(±1/sqrt(k)); the default) or `"glorot_uniform"`
            (Keras's Dense default, about 18x smaller at k = 128, d = 512).
        synchronized: synchronised BatchNorm in the heads under `tf.distribute`.

    Returns (call): `{"total", "equi", "trans"}`, float32 scalars.

    Example (a tiny model; the batch's rows 2i and 2i+1 are an aligned pair):
    >>> import numpy as np
    >>> from keras_eqssl.methods import STL, PairModel, SimCLR
    >>> from keras_eqssl.nn import backbone_from_name
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...     SimCLR(projector_units=[16, 8], temperature=0.2),
    ...     objectives=[STL(projector_units=[16, 8], transform_units=[16, 8], transform_projector_units=[8, 8])],
    ...     image_size=16,
    ... )
    >>> views = np.random.default_rng(0).random((2, 4, 16, 16, 3)).astype("float32")
    >>> _, terms = model.compute_losses({"views": {"v1": views[0], "v2": views[1]}})
    >>> sorted(terms)
    ['simclr', 'stl', 'stl_equi', 'stl_trans']
    """

    short_name = "stl"
    choices = {"features": FEATURES, "hypernetwork_init": HYPERNETWORK_INITS}
    resume_apply = ("weight", "equi_weight", "trans_weight", "temperature")

    def __init__(
        self,
        weight: float = 1.0,
        equi_weight: float = 1.0,
        trans_weight: float = 0.1,
        temperature: float = 0.2,
        projector_units=(512, 128),
        transform_units=(128, 128),
        transform_projector_units=(128, 128),
        features: str = "equivariant",
        hypernetwork_init: str = TORCH_LINEAR,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        check_non_negative("STL", equi_weight=equi_weight, trans_weight=trans_weight)
        if not temperature > 0:
            raise ValueError(f"STL: temperature must be > 0; received {temperature}")
        self.check_choices(features=features, hypernetwork_init=hypernetwork_init)
        self.equi_weight = float(equi_weight)
        self.trans_weight = float(trans_weight)
        self.temperature = float(temperature)
        self.projector_units = units_argument("STL", "projector_units", projector_units)
        self.transform_units = units_argument("STL", "transform_units", transform_units)
        self.transform_projector_units = units_argument("STL", "transform_projector_units", transform_projector_units)
        self.features = features
        self.hypernetwork_init = hypernetwork_init
        self.synchronized = bool(synchronized)
        self.equi_projector = self.transform_encoder = self.transform_projector = self.hypernetwork = None

    @classmethod
    def config_problems(cls, config) -> list[str]:
        problems = []
        if config.augment.policy != "stl":
            problems.append(
                f"STL needs aligned pairs (images 2i and 2i+1 share one transformation): set "
                f"config.augment.policy='stl'; received config.augment.policy={config.augment.policy!r}."
            )
        batch = int(config.data.batch_size)  # one replica; training checks each replica's share
        problems += [f"config.data.batch_size={batch}: {problem}" for problem in cls.batch_problems(batch)]
        return problems

    @classmethod
    def batch_problems(cls, per_replica_batch: int) -> list[str]:
        if per_replica_batch % 2:
            return [
                f"STL pairs rows (2i, 2i+1) on each replica, so the per-replica batch must be even; it is "
                f"{per_replica_batch}"
            ]
        return []

    def setup(self, context) -> None:
        super().setup(context)
        d = context.equivariant_dim if self.features == "equivariant" else context.feature_dim
        k = self.transform_units[-1]
        head = dict(use_last_bias=False, synchronized=self.synchronized, dtype=self.dtype_policy)
        self.equi_projector = MLP(self.projector_units, name="equi_projector", **head)
        self.transform_encoder = MLP(self.transform_units, name="transform_encoder", **head)
        self.transform_projector = MLP(self.transform_projector_units, name="transform_projector", **head)
        self.hypernetwork = LinearHypernetwork(
            d, kernel_initializer=self.hypernetwork_init, name="hypernetwork", dtype=self.dtype_policy
        )
        self.equi_projector.build((None, d))
        self.transform_encoder.build((None, 2 * d))
        self.transform_projector.build((None, k))
        self.hypernetwork.build((None, d), (None, k))
        self._dim = d

    def term_names(self) -> list[str]:
        return [TOTAL, "equi", "trans"]

    def representations(self, pair: dict):
        """`(y1, y2)`, `(B, d)` each: the vectors STL reads (`features`), in the heads' compute dtype."""
        source = pair["equivariant"] if self.features == "equivariant" else pair["features"]
        dtype = self.transform_encoder.compute_dtype
        return tuple(check_pairs(ops.cast(source[v], dtype), f"pair[{v!r}]") for v in ("v1", "v2"))

    def transform_codes(self, y1, y2, training=None):
        """`(u12, u21)`, `(B, k)`: g on `concat[y1, y2]` ("t1 -> t2") and on `concat[y2, y1]`."""
        u12 = self.transform_encoder(ops.concatenate([y1, y2], axis=-1), training=training)
        u21 = self.transform_encoder(ops.concatenate([y2, y1], axis=-1), training=training)
        return u12, u21

    def predictions(self, y1, y2, u12, u21):
        """`(y1_hat, y2_hat)`, `(B, d)`: `W(u21[swap]) y2` and `W(u12[swap]) y1` (the partner's code)."""
        return self.hypernetwork(y2, partner_swap(u21)), self.hypernetwork(y1, partner_swap(u12))

    def call(self, pair: dict, training=None) -> dict:
        y1, y2 = self.representations(pair)
        u12, u21 = self.transform_codes(y1, y2, training)
        y1_hat, y2_hat = self.predictions(y1, y2, u12, u21)

        def project(y):
            return ops.cast(self.equi_projector(y, training=training), "float32")

        z = ops.concatenate([project(y1), project(y2)], axis=0)
        z_hat = ops.concatenate([project(y1_hat), project(y2_hat)], axis=0)
        equi = nt_xent(z, z_hat, temperature=self.temperature)

        a12, b12 = pair_halves(u12)
        a21, b21 = pair_halves(u21)
        u_a, u_b = ops.concatenate([a12, a21], axis=0), ops.concatenate([b12, b21], axis=0)
        t_a = ops.cast(self.transform_projector(u_a, training=training), "float32")
        t_b = ops.cast(self.transform_projector(u_b, training=training), "float32")
        trans = nt_xent(t_a, t_b, temperature=self.temperature)
        return {TOTAL: self.equi_weight * equi + self.trans_weight * trans, "equi": equi, "trans": trans}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "equi_weight": self.equi_weight,
            "trans_weight": self.trans_weight,
            "temperature": self.temperature,
            "projector_units": list(self.projector_units),
            "transform_units": list(self.transform_units),
            "transform_projector_units": list(self.transform_projector_units),
            "features": self.features,
            "hypernetwork_init": self.hypernetwork_init,
            "synchronized": self.synchronized,
        }
