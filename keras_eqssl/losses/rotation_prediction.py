"""Four-way rotation prediction (quarter turns): cross-entropy and accuracy, as E-SSL and GTSA train it."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.augment.base import CATEGORICAL, ParamSpec
from keras_eqssl.losses import distributed
from keras_eqssl.losses.parameter_regression import parameter_regression

ROTATION_SPEC = ParamSpec("rot90", (1,), CATEGORICAL, 0, 3, "int32", doc="quarter turns, counter-clockwise")


def rotation_prediction(logits, labels) -> dict[str, tf.Tensor]:
    """Cross-entropy of 4-way rotation logits and the accuracy of their argmax (Gidaris et al., ICLR 2018):

        total = mean_n -log softmax(logits_n)[k_n]        accuracy = mean_n [argmax logits_n == k_n]

    with k_n in {0, 1, 2, 3} the counter-clockwise quarter turns of example n. E-SSL (Dangovski et
    al., ICLR 2022) and GTSA (Kim et al., 2023) both add it to their SSL loss. Means over the global
    batch under `tf.distribute` (`keras_eqssl.losses.distributed`).

    Args:
        logits: `(N, 4)` scores (any float dtype; float32 math).
        labels: `(N, 1)` or `(N,)` int quarter turns.

    Returns:
        `{"total": scalar cross-entropy, "accuracy": scalar}` float32.

    Example:
    >>> import numpy as np
    >>> logits = np.array([[5.0, 0, 0, 0], [0, 0, 5.0, 0]], "float32")
    >>> out = rotation_prediction(logits, np.array([[0], [1]]))
    >>> round(float(out["total"]), 3), float(out["accuracy"])
    (2.52, 0.5)
    """
    logits = ops.cast(logits, "float32")
    labels = ops.reshape(ops.cast(labels, "int32"), (-1, 1))
    ce = parameter_regression({"rot90": logits}, {"rot90": labels}, {"rot90": ROTATION_SPEC})["rot90"]
    correct = ops.cast(ops.equal(ops.cast(ops.argmax(logits, axis=-1), "int32"), labels[:, 0]), "float32")
    accuracy = distributed.global_mean(ops.sum(correct), ops.shape(correct)[0])
    return {"total": ce, "accuracy": accuracy}
