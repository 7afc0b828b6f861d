"""GTSA's patch-correspondence loss: negative cosine between the most confident nearest-neighbour token pairs."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32


def _check_tokens(student: tf.Tensor, teacher: tf.Tensor) -> None:
    for x, name in ((student, "student"), (teacher, "teacher")):
        if x.shape.rank is not None and x.shape.rank != 3:
            raise ValueError(
                f"patch_correspondence: `{name}` must have shape (batch, tokens, dim); received {name}.shape={x.shape}."
            )
    for axis, what in ((0, "batch size"), (2, "dim")):
        if student.shape.rank is None or teacher.shape.rank is None:
            break
        if not student.shape[axis : axis + 1].is_compatible_with(teacher.shape[axis : axis + 1]):
            raise ValueError(
                f"patch_correspondence: `student` and `teacher` must have the same {what}; "
                f"received student.shape={student.shape} and teacher.shape={teacher.shape}."
            )


def _matched_cosine(queries: tf.Tensor, keys: tf.Tensor, sim: tf.Tensor, num_matches: int) -> tf.Tensor:
    """`(B,)`: mean cos(q_i, k_nn(i)) over the `min(num_matches, Nq)` queries with the largest max-cosine.

    `queries` `(B, Nq, D)` and `keys` `(B, Nk, D)` are unit vectors, `sim` `(B, Nq, Nk)` their cosines.
    The selection (argmax, top-k) is not differentiated; the kept pairs' cosines are recomputed.
    """
    num_queries = queries.shape[1] if queries.shape[1] is not None else tf.shape(queries)[1]
    k = tf.minimum(num_matches, num_queries) if isinstance(num_queries, tf.Tensor) else min(num_matches, num_queries)
    sim = ops.stop_gradient(sim)
    nearest = tf.argmax(sim, axis=2, output_type=tf.int32)  # (B, Nq)
    kept = tf.math.top_k(tf.reduce_max(sim, axis=2), k=k, sorted=False).indices  # (B, K)
    kept_queries = tf.gather(queries, kept, batch_dims=1)  # (B, K, D)
    kept_keys = tf.gather(keys, tf.gather(nearest, kept, batch_dims=1), batch_dims=1)  # (B, K, D)
    return ops.mean(ops.sum(kept_queries * kept_keys, axis=2), axis=1)


def patch_correspondence(student, teacher, num_matches: int) -> tf.Tensor:
    """Symmetric nearest-neighbour patch matching with cosine similarity, over the most confident matches.

    GTSA's patch-correspondence term, VICRegL's nearest-neighbour matching (Bardes et al., NeurIPS
    2022, "VICRegL", the filtered L_nn) with cosine similarity in place of the L2 distance. With
    s_i, t_j the student and stop-gradient teacher tokens of one sample,

        nn(i) = argmax_j cos(s_i, t_j),   c_i = max_j cos(s_i, t_j),
        I_K   = the K = min(num_matches, Ns) student tokens with the largest c_i,
        L_1   = - 1/K sum_{i in I_K} cos(s_i, t_nn(i)),

    L_2 the same with the teacher tokens querying the student tokens (K = min(num_matches, Nt)),
    and the per-sample loss (L_1 + L_2) / 2, in [-1, 1]. The matching (argmax and top-K) is not
    differentiated; in L_2 the gradient reaches the student only through the matched s_nn(j).
    The value is the mean over the batch, in float32.

    Distributed (inside `strategy.run`): the mean is over the global batch (two scalars are
    all-reduced) and each replica returns global_loss / R (see `keras_eqssl.losses.distributed`).

    Args:
        student: `(B, Ns, D)` student tokens.
        teacher: `(B, Nt, D)` teacher tokens; no gradient flows into `teacher`.
        num_matches: K, the number of most confident matches kept per direction (>= 1; capped at
            the number of query tokens).

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> s = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")
    >>> t = np.array([[[1.0, 0.0], [1.0, 1.0]]], "float32")
    >>> float(patch_correspondence(s, t, num_matches=1)), round(float(patch_correspondence(s, t, 2)), 4)
    (-1.0, -0.8536)
    """
    if int(num_matches) < 1:
        raise ValueError(f"patch_correspondence: num_matches must be >= 1; received num_matches={num_matches}.")
    num_matches = int(num_matches)
    student, teacher = as_float32(student, "student"), as_float32(teacher, "teacher")
    _check_tokens(student, teacher)
    teacher = ops.stop_gradient(teacher)
    s, t = ops.normalize(student, axis=2), ops.normalize(teacher, axis=2)
    sim = tf.einsum("bid,bjd->bij", s, t)  # (B, Ns, Nt)
    student_to_teacher = _matched_cosine(s, t, sim, num_matches)
    teacher_to_student = _matched_cosine(t, s, tf.transpose(sim, (0, 2, 1)), num_matches)
    per_sample = -0.5 * (student_to_teacher + teacher_to_student)  # (B,)
    return distributed.global_mean(ops.sum(per_sample), ops.shape(student)[0])
