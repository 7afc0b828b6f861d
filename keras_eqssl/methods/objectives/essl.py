"""E-SSL: four-way rotation prediction on a small crop shown in all four rotations."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.losses.rotation_prediction import rotation_prediction
from keras_eqssl.methods.objectives.base import TOTAL, Objective, units_argument
from keras_eqssl.nn.mlp import MLP

FEATURES = ("all", "equivariant")
ROTATION_VIEWS = ("rot0", "rot1", "rot2", "rot3")

_POLICY_HINT = 'use config.augment.policy="essl" (it adds the views rot0..rot3: one small crop in four rotations)'


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ESSL(Objective):
    """E-SSL's rotation prediction (Dangovski et al., "Equivariant Contrastive Learning", ICLR 2022).

    After the official code (`rdangovs/essl`, `cifar10/main.py`): one extra small crop per image is
    rotated by k * 90 degrees for k = 0..3 (the `essl` augmentation policy's views `rot0`..`rot3`),
    the four copies go through the backbone as one batch of 4B, and a head classifies the rotation:

        x_k = rot90(crop, k)                   k = 0, 1, 2, 3,   (B, h, w, 3) each
        f = backbone(concat[x_0, x_1, x_2, x_3])                 (4B, C) pooled features
        logits = head(f)                                         (4B, 4)
        L = 1 / 4B * sum_i -log softmax(logits_i)[k_i]           k_i: the rotation of row i

    `extra_views()` names the rotated views, so `PairModel` encodes them with the pair (one
    backbone call for the four). The head is E-SSL's CIFAR one for SimCLR,
    Linear-LN-ReLU-Linear-LN-ReLU-Linear(4) (`MLP([*hidden_units, 4], norm="layer")`); E-SSL's
    hidden layers are 2048 wide, the default here is 512 for the small backbones of this library. The backbone runs in the same mode as for
    the pair (training: BatchNorm statistics of the 4B rotated crops, as in E-SSL). E-SSL adds
    `lambda * L` to SimCLR or SimSiam with lambda = 0.4: the default `weight`.

    The labels are the batch's recorded `params["rot{k}"]["rot90"]` when present, else k. The
    cross-entropy (`parameter_regression`'s categorical loss) and the accuracy are means over the
    global batch under `tf.distribute` (values global / R).

    Args:
        weight: lambda, the loss weight (E-SSL: 0.4).
        hidden_units: the head's hidden widths (E-SSL CIFAR: 2048-2048).
        features: `"all"` (the whole pooled representation, as E-SSL) or `"equivariant"` (the
            split's equivariant part only).
        synchronized: accepted for the factory; unused (LayerNorm has no batch statistics).

    Returns (call): `{"total": cross-entropy, "accuracy": fraction of rotations classified right}`.

    Example (a tiny model; the batch carries the `essl` policy's views rot0..rot3):
    >>> import numpy as np
    >>> from keras_eqssl.methods import ESSL, PairModel, SimCLR
    >>> from keras_eqssl.nn import backbone_from_name
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...     SimCLR(projector_units=[16, 8]),
    ...     objectives=[ESSL(hidden_units=[16, 16])],
    ...     image_size=16,
    ... )
    >>> x = np.random.default_rng(0).random((3, 4, 16, 16, 3)).astype("float32")
    >>> views = {"v1": x[0], "v2": x[1], **{f"rot{k}": np.rot90(x[2], k, axes=(1, 2)) for k in range(4)}}
    >>> _, terms = model.compute_losses({"views": views})
    >>> sorted(terms)
    ['essl', 'essl_accuracy', 'simclr']
    """

    short_name = "essl"
    choices = {"features": FEATURES}

    def __init__(
        self,
        weight: float = 0.4,
        hidden_units=(512, 512),
        features: str = "all",
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        self.check_choices(features=features)
        self.hidden_units = units_argument("ESSL", "hidden_units", hidden_units, allow_empty=True)
        self.features = features
        self.synchronized = bool(synchronized)
        self.head = None

    @classmethod
    def config_problems(cls, config) -> list[str]:
        policy = config.augment.policy
        if policy != "essl":
            return [f"model.essl classifies the rotations of the rotated crops: {_POLICY_HINT}; received {policy!r}."]
        return []

    def setup(self, context) -> None:
        # No check of context.param_specs for rot0..rot3: training hands the model the pair's specs only.
        super().setup(context)
        in_dim = context.feature_dim if self.features == "all" else context.equivariant_dim
        self.head = MLP([*self.hidden_units, 4], norm="layer", name="head", dtype=self.dtype_policy)
        self.head.build((None, in_dim))

    def term_names(self) -> list[str]:
        return [TOTAL, "accuracy"]

    def extra_views(self) -> list[str]:
        return list(ROTATION_VIEWS)

    def labels(self, batch: dict, sizes):
        """`(4B, 1)` int32: each rotated view's recorded `params[view]["rot90"]`, else its k."""
        params = batch.get("params") or {}
        labels = []
        for k, (view, size) in enumerate(zip(ROTATION_VIEWS, sizes)):
            recorded = params.get(view, {}).get("rot90")
            if recorded is None:
                recorded = ops.full((size, 1), k, dtype="int32")
            labels.append(ops.reshape(ops.cast(recorded, "int32"), (-1, 1)))
        return ops.concatenate(labels, axis=0)

    def logits(self, pair: dict, training=None):
        """`(logits, labels)`: the head on the rotated crops, rot0's rows first, `(4B, 4)` float32,
        and their rotations `(4B, 1)` int32."""
        source = pair["features"] if self.features == "all" else pair["equivariant"]
        missing = [v for v in ROTATION_VIEWS if v not in source]
        if missing:
            raise ValueError(f"ESSL: the pair has no views {missing} (it has {sorted(source)}); {_POLICY_HINT}.")
        f = ops.concatenate([source[v] for v in ROTATION_VIEWS], axis=0)
        labels = self.labels(pair["batch"], [ops.shape(source[v])[0] for v in ROTATION_VIEWS])
        return ops.cast(self.head(f, training=training), "float32"), labels

    def call(self, pair: dict, training=None) -> dict:
        logits, labels = self.logits(pair, training)
        out = rotation_prediction(logits, labels)
        return {TOTAL: out["total"], "accuracy": out["accuracy"]}

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hidden_units": list(self.hidden_units),
            "features": self.features,
            "synchronized": self.synchronized,
        }
