"""Barlow Twins: redundancy reduction through the cross-correlation matrix."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import global_embedding_pair


def _standardize(z, eps):
    mean = ops.mean(z, axis=0, keepdims=True)
    var = ops.mean(ops.square(z - mean), axis=0, keepdims=True)  # biased, as BatchNorm1d in training
    return (z - mean) / ops.sqrt(var + eps)


def barlow_twins(z1, z2, lambd: float = 5e-3, eps: float = 1e-5, *, gather_distributed: bool = True) -> tf.Tensor:
    """Barlow Twins loss (Zbontar, Jing, Misra, LeCun, Deny, ICML 2021, "Barlow Twins:
    Self-Supervised Learning via Redundancy Reduction", eqs. 1-2).

    With each embedding dimension standardised over the batch (BatchNorm without affine, as in
    the official code: biased variance, `eps` inside the square root),

        zhat^A_b = (z^A_b - mean_b z^A) / sqrt(var_b z^A + eps)
        C_ij     = 1 / N * sum_b zhat^A_{b,i} zhat^B_{b,j}                   (D x D cross-correlation)
        L        = sum_i (1 - C_ii)^2 + lambd * sum_i sum_{j != i} C_ij^2

    Distributed (inside `strategy.run`): the standardisation and C use the **global** batch (both
    views are all-gathered), and each replica returns global_loss / R (see
    `keras_eqssl.losses.distributed`). `gather_distributed=False` uses per-replica statistics.

    Args:
        z1: `(N, D)` embeddings of the first views, N >= 2.
        z2: `(N, D)` embeddings of the second views.
        lambd: weight of the redundancy-reduction (off-diagonal) term; 5e-3 in the paper.
        eps: added to the batch variance before the square root.
        gather_distributed: use global batch statistics under `tf.distribute`.

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    >>> float(barlow_twins(z, z)) < float(barlow_twins(z, z[::-1]))
    True
    """
    z1, z2 = global_embedding_pair(z1, z2, "barlow_twins", gather_distributed)
    n = ops.cast(ops.shape(z1)[0], "float32")
    c = ops.matmul(ops.transpose(_standardize(z1, eps)), _standardize(z2, eps)) / n  # (D, D)
    on_diag = ops.sum(ops.square(1.0 - ops.diagonal(c)))
    off_diag = ops.sum(ops.square(c)) - ops.sum(ops.square(ops.diagonal(c)))
    return distributed.scale(on_diag + lambd * off_diag)
