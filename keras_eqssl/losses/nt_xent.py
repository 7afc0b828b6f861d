"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32, check_embeddings

# Masks an anchor's similarity with itself. Finite (no -inf: -inf * 0 and inf - inf give NaN);
# logits are bounded by 1 / temperature, so exp(-1e9 - max) is exactly 0 in float32.
LARGE_NEGATIVE = -1e9
NEGATIVES = ("all", "cross_view")


def nt_xent(z1, z2, temperature: float = 0.1, *, negatives: str = "all", gather_distributed: bool = True) -> tf.Tensor:
    """NT-Xent loss of SimCLR (Chen et al., ICML 2020, "A Simple Framework for Contrastive
    Learning of Visual Representations", eq. 1).

    With the 2N embeddings of a batch of N pairs, z_1..z_2N, and sim(u, v) = u.v / (|u| |v|):

        l(i, j) = -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )
        L       = 1 / (2N) * sum_{k=1..N} [ l(2k-1, 2k) + l(2k, 2k-1) ]

    Each anchor's softmax runs over the 2N - 1 other embeddings: its positive (the other view of
    the same image) and 2N - 2 negatives. The anchor itself is masked with a large negative logit
    (-1e9), never -inf.

    `negatives="cross_view"` is the cross-view InfoNCE of E-SSL's code (`info_nce_loss` in
    rdangovs/essl, `cifar10/main.py`, symmetrised): each anchor's softmax runs over the N
    embeddings of the *other* view only, its positive and N - 1 negatives, no same-view ones:

        l'(i) = -log( exp(sim(z1_i, z2_i) / t) / sum_{k=1..N} exp(sim(z1_i, z2_k) / t) )
        L     = 1 / (2N) * sum_i [ l'(i) + (the same with z1 and z2 swapped)(i) ]

    Distributed (inside `strategy.run`, R replicas): the negatives come from the **global** batch.
    Each replica all-gathers both views, uses its own 2 * n_local embeddings as anchors against
    all 2 * N_global candidates (`cross_view`: the N_global of the other view), with its positives
    and self-mask at its global row offset, and returns global_loss / R (see
    `keras_eqssl.losses.distributed`), so summed gradients equal the single-device gradients of
    the global batch. `gather_distributed=False` uses only the local
    batch as negatives (each replica returns local_loss / R): cheaper, but a different loss.

    Args:
        z1: `(N, D)` embeddings of the first views (any float dtype; the math is float32).
        z2: `(N, D)` embeddings of the second views; row i pairs with row i of `z1`.
        temperature: softmax temperature t > 0 (SimCLR uses 0.1 to 0.5; SIE's repo uses 0.1).
        negatives: `"all"` (NT-Xent: the 2N - 2 other embeddings of both views) or `"cross_view"`
            (E-SSL's InfoNCE: the N - 1 other embeddings of the other view).
        gather_distributed: gather negatives across replicas under `tf.distribute`.

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    >>> aligned = float(nt_xent(z, z + 0.01))
    >>> shuffled = float(nt_xent(z, z[::-1]))
    >>> aligned < shuffled
    True
    """
    if not temperature > 0:
        raise ValueError(f"nt_xent: temperature must be > 0; received temperature={temperature}.")
    if negatives not in NEGATIVES:
        raise ValueError(f"nt_xent: negatives must be one of {NEGATIVES}; received negatives={negatives!r}.")
    z1, z2 = as_float32(z1, "z1"), as_float32(z2, "z2")
    check_embeddings(z1, z2, ("z1", "z2"), "nt_xent")
    z1 = ops.normalize(z1, axis=1)
    z2 = ops.normalize(z2, axis=1)

    n = tf.shape(z1)[0]
    if gather_distributed:
        c1, c2 = distributed.all_gather(z1), distributed.all_gather(z2)
        offset = distributed.global_offset(n)
    else:
        c1, c2, offset = z1, z2, tf.constant(0, tf.int32)
    n_global = tf.shape(c1)[0]

    rows = offset + tf.range(n)  # global index of each local pair
    if negatives == "cross_view":
        logits = ops.concatenate(
            [ops.matmul(z1, ops.transpose(c2)), ops.matmul(z2, ops.transpose(c1))], axis=0
        )  # (2n, N): each view-1 anchor against all view-2 candidates, and the reverse
        logits = logits / temperature
        positive_idx = ops.concatenate([rows, rows], axis=0)
    else:
        anchors = ops.concatenate([z1, z2], axis=0)  # (2n, D)
        candidates = ops.concatenate([c1, c2], axis=0)  # (2N, D): [view 1 of all; view 2 of all]
        logits = ops.matmul(anchors, ops.transpose(candidates)) / temperature  # (2n, 2N)
        self_idx = ops.concatenate([rows, n_global + rows], axis=0)
        positive_idx = ops.concatenate([n_global + rows, rows], axis=0)
        is_self = ops.one_hot(self_idx, 2 * n_global, dtype="bool")
        logits = ops.where(is_self, LARGE_NEGATIVE, logits)

    per_anchor = keras.losses.sparse_categorical_crossentropy(positive_idx, logits, from_logits=True)  # (2n,)
    if gather_distributed:
        return distributed.global_mean(ops.sum(per_anchor), 2 * n)
    return distributed.scale(ops.mean(per_anchor))
