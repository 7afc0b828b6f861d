"""VICReg: variance-invariance-covariance regularisation."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import global_embedding_pair


def _off_diagonal_sq_sum(m):
    return ops.sum(ops.square(m)) - ops.sum(ops.square(ops.diagonal(m)))


def _variance_and_covariance(z, eps):
    n = ops.cast(ops.shape(z)[0], "float32")
    d = ops.cast(ops.shape(z)[1], "float32")
    z = z - ops.mean(z, axis=0, keepdims=True)
    cov = ops.matmul(ops.transpose(z), z) / (n - 1.0)  # (D, D), unbiased as torch.var / torch.cov
    std = ops.sqrt(ops.diagonal(cov) + eps)
    return ops.mean(ops.relu(1.0 - std)), _off_diagonal_sq_sum(cov) / d


def vicreg(
    z1,
    z2,
    sim_weight: float = 25.0,
    std_weight: float = 25.0,
    cov_weight: float = 1.0,
    eps: float = 1e-4,
    *,
    gather_distributed: bool = True,
) -> dict[str, tf.Tensor]:
    """VICReg loss (Bardes, Ponce, LeCun, ICLR 2022, "VICReg: Variance-Invariance-Covariance
    Regularization for Self-Supervised Learning", eqs. 1-6, as in the official code).

    For embeddings Z, Z' of shape (N, D), with Var and C unbiased (divided by N - 1):

        s(Z, Z') = 1 / (N D) * sum_i |z_i - z'_i|^2                     (invariance, = mse)
        v(Z)     = 1 / D * sum_j max(0, 1 - sqrt(Var(z^j) + eps))          (variance, hinge at 1)
        C(Z)     = 1 / (N - 1) * sum_i (z_i - mean(z)) (z_i - mean(z))^T
        c(Z)     = 1 / D * sum_{i != j} C(Z)_ij^2                          (covariance)
        L        = sim_weight * s(Z, Z') + std_weight * [v(Z) + v(Z')] / 2
                   + cov_weight * [c(Z) + c(Z')]

    The halved variance term and the mean (not sum) over D in s follow the official code
    (facebookresearch/vicreg, also used by SIE); the default weights 25/25/1 are tuned for them.
    SIE uses sim 10, std 10, cov 1.

    Distributed (inside `strategy.run`): all statistics are over the **global** batch (both views
    are all-gathered) and every returned value is global_value / R (see
    `keras_eqssl.losses.distributed`). `gather_distributed=False` uses per-replica statistics.

    Args:
        z1: `(N, D)` embeddings of the first views, N >= 2.
        z2: `(N, D)` embeddings of the second views.
        sim_weight, std_weight, cov_weight: the weights lambda, mu, nu of the three terms.
        eps: added to the variance before the square root.
        gather_distributed: use global batch statistics under `tf.distribute`.

    Returns:
        dict of float32 scalars: `"invariance"` s, `"variance"` [v(Z) + v(Z')] / 2,
        `"covariance"` c(Z) + c(Z') (all unweighted), and `"total"` L (weighted).

    Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(32, 8)).astype("float32")
    >>> terms = vicreg(z, z)
    >>> sorted(terms)
    ['covariance', 'invariance', 'total', 'variance']
    >>> float(terms["invariance"])
    0.0
    """
    z1, z2 = global_embedding_pair(z1, z2, "vicreg", gather_distributed, " for variances")

    invariance = ops.mean(ops.square(z1 - z2))
    var1, cov1 = _variance_and_covariance(z1, eps)
    var2, cov2 = _variance_and_covariance(z2, eps)
    variance = (var1 + var2) / 2.0
    covariance = cov1 + cov2
    total = sim_weight * invariance + std_weight * variance + cov_weight * covariance
    terms = {"invariance": invariance, "variance": variance, "covariance": covariance, "total": total}
    return {k: distributed.scale(v) for k, v in terms.items()}
