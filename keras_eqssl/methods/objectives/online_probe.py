"""An online linear probe: top-1 of a linear classifier on stop-gradient features, during pretraining."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_eqssl.errors import ConfigError
from keras_eqssl.losses.distributed import all_sum, scale
from keras_eqssl.methods.objectives.base import TOTAL, Objective

# part of the representation -> the key of the pair dict `PairModel.pair_outputs` hands objectives
PAIR_KEYS = {"embedding": "features", "invariant": "invariant", "equivariant": "equivariant"}


@keras.saving.register_keras_serializable(package="keras_eqssl")
class OnlineLinearProbe(Objective):
    """A linear classifier on stop-gradient pooled features, trained along with pretraining.

    The "online linear classifier" of solo-learn and SimCLR's code: each step it classifies both
    views' features `x = [stop_gradient(f(v1)); stop_gradient(f(v2))]` `(2B, C)` with one `Dense`
    layer and adds its softmax cross-entropy

        L_online = mean_i CE(W x_i + b, y_i)        y: the batch's labels, repeated for both views

    to the model's loss. The gradient is stopped at the features, so only the probe's own weights
    learn from it: the encoder and every other loss train exactly as without it, while `fit`
    reports `online_probe` (the cross-entropy) and `online_probe_top1` (the accuracy on the batch,
    before the step) beside the other terms, and TensorBoard plots them. The model's optimizer
    updates the probe (same learning-rate schedule and weight decay as the encoder); `weight`
    scales its loss, so its step size.

    From a config: `config.model.online_probe.enabled=True` on a labelled source; the number of
    classes comes from the source (`keras_eqssl.data.classes.num_classes`), and a source without
    class labels is a `ConfigError`.

    Args:
        num_classes: K; the labels `batch[label_key]` `(B,)` lie in [0, K).
        features: the part to classify: "embedding" (the whole pooled vector, default),
            "invariant" or "equivariant".
        weight: scales the probe's loss.
        label_key: the batch key of the labels.

    Returns (call): `{"total": cross-entropy, "top1": accuracy}`, float32 scalars over both views
    of the batch (global batch under `tf.distribute`, in the replica convention of
    `keras_eqssl.losses`).

    Example:
    >>> import numpy as np
    >>> from keras_eqssl.methods import PairModel, SimCLR
    >>> from keras_eqssl.nn import backbone_from_name
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...     SimCLR(projector_units=[16, 8]),
    ...     objectives=[OnlineLinearProbe(num_classes=3)],
    ...     image_size=16,
    ... )
    >>> views = np.random.default_rng(0).random((2, 4, 16, 16, 3)).astype("float32")
    >>> batch = {"views": {"v1": views[0], "v2": views[1]}, "label": np.array([0, 1, 2, 0])}
    >>> _, terms = model.compute_losses(batch)
    >>> sorted(terms)
    ['online_probe', 'online_probe_top1', 'simclr']
    """

    short_name = "online_probe"
    choices = {"features": tuple(PAIR_KEYS)}

    def __init__(
        self, num_classes: int, features: str = "embedding", weight: float = 1.0, label_key: str = "label", **kwargs
    ):
        super().__init__(weight=weight, **kwargs)
        if int(num_classes) < 2:
            raise ValueError(f"OnlineLinearProbe: num_classes must be >= 2; received {num_classes}.")
        if features not in PAIR_KEYS:
            raise ValueError(f"OnlineLinearProbe: features must be one of {sorted(PAIR_KEYS)}; received {features!r}.")
        self.num_classes = int(num_classes)
        self.features = features
        self.label_key = str(label_key)
        self.classifier = None

    @classmethod
    def arguments_from_config(cls, section, config) -> dict:
        """The section's arguments and `num_classes` from the data source's labels (a `ConfigError` without them)."""
        from keras_eqssl.data.classes import num_classes

        classes = num_classes(config)
        if classes < 2:
            found = "no class labels" if classes == 0 else f"labels of {classes} class"
            raise ConfigError(
                f"config.model.online_probe.enabled=True: config.data.source={config.data.source!r} has {found}; "
                "the online probe classifies labels of at least 2 classes: use a labelled source or turn it off"
            )
        return {**super().arguments_from_config(section, config), "num_classes": classes}

    def setup(self, context) -> None:
        super().setup(context)
        dims = {
            "embedding": context.feature_dim,
            "invariant": context.invariant_dim,
            "equivariant": context.equivariant_dim,
        }
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier", dtype=self.dtype_policy)
        self.classifier.build((None, dims[self.features]))

    def term_names(self) -> list[str]:
        return [TOTAL, "top1"]

    def call(self, pair: dict, training=None) -> dict:
        batch = pair["batch"]
        if self.label_key not in batch:
            raise ValueError(
                f"OnlineLinearProbe: the batch has no {self.label_key!r} (integer class labels); it has "
                f"{sorted(batch)}. Use a labelled source or drop the probe."
            )
        source = pair[PAIR_KEYS[self.features]]
        x = tf.concat([tf.stop_gradient(source["v1"]), tf.stop_gradient(source["v2"])], axis=0)
        labels = tf.cast(tf.reshape(batch[self.label_key], [-1]), tf.int32)
        labels = tf.concat([labels, labels], axis=0)
        logits = tf.cast(self.classifier(x), tf.float32)
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels), tf.float32)
        count = all_sum(tf.cast(tf.shape(labels)[0], tf.float32))
        return {
            TOTAL: scale(all_sum(tf.reduce_sum(ce)) / count),
            "top1": scale(all_sum(tf.reduce_sum(correct)) / count),
        }

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "features": self.features,
            "label_key": self.label_key,
        }
