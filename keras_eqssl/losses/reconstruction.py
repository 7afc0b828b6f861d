"""Mean squared reconstruction error."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32, check_same_shape


def reconstruction_mse(pred, target) -> tf.Tensor:
    """Mean squared error between a reconstruction and its target, over every element.

        L_recon = 1 / (N * prod(S)) * sum_{b, s} (xhat_{b,s} - x_{b,s})^2

    The reconstruction loss of the cross-attention method (arXiv 2412.03314; "mean L2" in the
    AAAI follow-up): `pred` is the decoder output x̂2 and `target` the normalised view x2 fed to
    the encoder. Gradients flow into both arguments; stop them on `target` in the caller if it
    comes from a network that should not learn from this loss.

    Distributed (inside `strategy.run`): the mean is over the global batch (two scalars are
    all-reduced, so uneven splits are weighted correctly) and each replica returns
    global_loss / R (see `keras_eqssl.losses.distributed`).

    Args:
        pred: `(N, *S)` reconstruction, e.g. `(N, H, W, 3)`.
        target: `(N, *S)` target of the same shape.

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> float(reconstruction_mse(np.zeros((2, 2, 2, 3)), np.ones((2, 2, 2, 3))))
    1.0
    """
    pred, target = as_float32(pred, "pred"), as_float32(target, "target")
    check_same_shape(pred, target, ("pred", "target"), "reconstruction_mse")
    return distributed.global_mean(ops.sum(ops.square(pred - target)), ops.size(pred))
