"""Negative cosine similarity of BYOL and SimSiam, with a stop-gradient on the target."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32, check_embeddings

VARIANTS = ("simsiam", "byol")


def negative_cosine(p, z, variant: str = "simsiam") -> tf.Tensor:
    """Negative cosine similarity between predictions and stop-gradient targets.

    SimSiam (Chen & He, CVPR 2021, "Exploring Simple Siamese Representation Learning", eqs. 1-2):

        D(p, z) = - p / |p|_2 . stopgrad(z) / |z|_2                    variant="simsiam", in [-1, 1]

    BYOL (Grill et al., NeurIPS 2020, "Bootstrap Your Own Latent", eq. 2), the squared distance of
    the normalised vectors:

        L(p, z) = |p / |p|_2 - stopgrad(z) / |z|_2|^2 = 2 - 2 cos(p, z)   variant="byol", in [0, 4]

    The two differ by an affine map, so BYOL's gradient is exactly twice SimSiam's. The value is
    the mean over the batch. Symmetrise in the caller: SimSiam uses D(p1, z2) / 2 + D(p2, z1) / 2,
    BYOL sums L(p1, z2') + L(p2, z1') with z' from the EMA target network (see `ema_update`).

    Distributed (inside `strategy.run`): the mean is over the global batch (two scalars are
    all-reduced) and each replica returns global_loss / R (see `keras_eqssl.losses.distributed`).

    Args:
        p: `(N, D)` predictor outputs of one view.
        z: `(N, D)` targets (projections of the other view); no gradient flows into `z`.
        variant: `"simsiam"` (-cos) or `"byol"` (2 - 2 cos).

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> p = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    >>> z = np.array([[3.0, 0.0], [1.0, 0.0]], "float32")
    >>> float(negative_cosine(p, z)), float(negative_cosine(p, z, variant="byol"))
    (-0.5, 1.0)
    """
    if variant not in VARIANTS:
        raise ValueError(f"negative_cosine: variant must be one of {VARIANTS}; received variant={variant!r}.")
    p, z = as_float32(p, "p"), as_float32(z, "z")
    check_embeddings(p, z, ("p", "z"), "negative_cosine")
    z = ops.stop_gradient(z)
    cos = ops.sum(ops.normalize(p, axis=1) * ops.normalize(z, axis=1), axis=1)  # (N,)
    per_example = -cos if variant == "simsiam" else 2.0 - 2.0 * cos
    return distributed.global_mean(ops.sum(per_example), ops.shape(p)[0])
