"""DINO's multi-crop self-distillation loss and the EMA update of its teacher centre."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_eqssl.losses import distributed
from keras_eqssl.losses._validation import as_float32
from keras_eqssl.losses.ema import ema_update


def _views(logits, name: str, fn: str) -> list[tf.Tensor]:
    """A list/tuple of `(B, K)` logits as float32 tensors, or a ValueError naming `name`."""
    if not isinstance(logits, list | tuple) or not logits:
        received = f"an empty {type(logits).__name__}" if isinstance(logits, list | tuple) else type(logits).__name__
        raise ValueError(
            f"{fn}: `{name}` must be a non-empty list of (batch, K) logits, one per view; received {received}."
        )
    views = [as_float32(x, f"{name}[{i}]") for i, x in enumerate(logits)]
    for i, x in enumerate(views):
        if x.shape.rank is not None and x.shape.rank != 2:
            raise ValueError(f"{fn}: `{name}[{i}]` must have shape (batch, K); received {name}[{i}].shape={x.shape}.")
    return views


def _check_same_shapes(views: list[tf.Tensor], names: list[str], fn: str) -> None:
    for x, name in zip(views[1:], names[1:]):
        if not views[0].shape.is_compatible_with(x.shape):
            raise ValueError(
                f"{fn}: every view must have the same shape (batch, K); "
                f"received {names[0]}.shape={views[0].shape} and {name}.shape={x.shape}."
            )


def _check_center(center: tf.Tensor, logits: tf.Tensor, fn: str) -> None:
    if center.shape.rank is not None and (
        center.shape.rank != 1 or not center.shape.is_compatible_with(logits.shape[-1:])
    ):
        raise ValueError(
            f"{fn}: `center` must have shape (K,) with K = the logits' width {logits.shape[-1]}; "
            f"received center.shape={center.shape}."
        )


def dino_loss(
    student_logits: Sequence,
    teacher_logits: Sequence,
    center,
    student_temperature: float = 0.1,
    teacher_temperature: float = 0.04,
) -> tf.Tensor:
    """DINO's multi-crop cross-entropy between centred, sharpened teacher and student distributions.

    Caron et al., ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers" (eq. 3
    and Algorithm 1). With teacher views a = 1..T (the global crops, which are also the first T
    student views) and student views v = 1..S:

        P_t[a] = softmax((t_a - c) / tau_t)           stop-gradient (no gradient to t or c)
        logP_s[v] = log_softmax(s_v / tau_s)
        L = 1 / |pairs| * sum_{a, v != a} mean_b( - sum_k P_t[a]_bk logP_s[v]_bk )

    with |pairs| = T * S - T. The math runs in float32 (mixed-precision logits are cast).

    Distributed (inside `strategy.run`): the mean is over the global batch (two scalars are
    all-reduced) and each replica returns global_loss / R (see `keras_eqssl.losses.distributed`).

    Args:
        student_logits: S tensors `(B, K)`, the student head's outputs for every view, the T global
            crops first.
        teacher_logits: T <= S tensors `(B, K)`, the teacher head's outputs for the global crops.
        center: `(K,)` the teacher centre (a `keras.Variable` or tensor; see `dino_center_update`).
        student_temperature: tau_s > 0.
        teacher_temperature: tau_t > 0 (a float or a scalar tensor, e.g. DINO's warm-up schedule).

    Returns:
        Scalar float32 loss.

    Example:
    >>> import numpy as np
    >>> s = [np.zeros((2, 4), "float32")] * 3
    >>> t = [np.zeros((2, 4), "float32")] * 2
    >>> round(float(dino_loss(s, t, np.zeros(4, "float32"))), 4)  # uniform vs uniform: log(4)
    1.3863
    """
    fn = "dino_loss"
    for name, value in (("student_temperature", student_temperature), ("teacher_temperature", teacher_temperature)):
        if isinstance(value, int | float) and not value > 0.0:
            raise ValueError(f"{fn}: `{name}` must be > 0; received {name}={value}.")
    students = _views(student_logits, "student_logits", fn)
    teachers = _views(teacher_logits, "teacher_logits", fn)
    num_teacher, num_student = len(teachers), len(students)
    if num_student < num_teacher or num_teacher * num_student - num_teacher < 1:
        raise ValueError(
            f"{fn}: the teacher views are the first len(teacher_logits) student views, and at least one "
            f"(teacher, other student view) pair is needed; received {num_student} student and "
            f"{num_teacher} teacher views."
        )
    _check_same_shapes(
        students + teachers,
        [f"student_logits[{i}]" for i in range(num_student)] + [f"teacher_logits[{i}]" for i in range(num_teacher)],
        fn,
    )
    center = as_float32(center, "center")
    _check_center(center, teachers[0], fn)

    tau_s = tf.cast(student_temperature, tf.float32)
    tau_t = tf.cast(teacher_temperature, tf.float32)
    teacher_probs = tf.stop_gradient(tf.nn.softmax((tf.stack(teachers) - center) / tau_t, axis=-1))  # (T, B, K)
    student_log_probs = tf.nn.log_softmax(tf.stack(students) / tau_s, axis=-1)  # (S, B, K)
    cross = -tf.einsum("abk,vbk->bav", teacher_probs, student_log_probs)  # (B, T, S)
    not_same_view = 1.0 - tf.eye(num_teacher, num_student, dtype=tf.float32)  # pair (a, v) with v != a
    per_example = tf.reduce_sum(cross * not_same_view, axis=[1, 2])  # (B,): summed over the pairs
    num_pairs = float(num_teacher * num_student - num_teacher)
    return distributed.global_mean(tf.reduce_sum(per_example) / num_pairs, tf.shape(per_example)[0])


def dino_center_update(center: keras.Variable, teacher_logits: Sequence, momentum=0.9) -> None:
    """Moves DINO's teacher centre towards the mean teacher logit of the global batch (DINO eq. 4):

        c <- m * c + (1 - m) * 1 / (T * B_global) * sum_{a, b} t_a[b]

    over all T teacher views and the whole global batch. Under `tf.distribute` inside
    `strategy.run` the sum and count are all-reduced, so every replica computes the same mean,
    and the assignment runs once from the cross-replica context (through `ema_update`), so the
    mirrored centre stays in sync. Call it after computing `dino_loss` with the old centre.

    Args:
        center: `(K,)` float variable (`keras.Variable`, e.g. a non-trainable weight created in
            the strategy's scope).
        teacher_logits: T tensors `(B, K)`, the teacher head's outputs for the global crops.
        momentum: m in [0, 1] (DINO: 0.9); a float or scalar tensor.

    Example:
    >>> import keras, numpy as np
    >>> center = keras.Variable(np.zeros(2, "float32"))
    >>> dino_center_update(center, [np.array([[1.0, 2.0], [3.0, 4.0]], "float32")], momentum=0.5)
    >>> [float(x) for x in center.numpy()]
    [1.0, 1.5]
    """
    fn = "dino_center_update"
    if isinstance(momentum, int | float) and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{fn}: `momentum` must be in [0, 1]; received momentum={momentum}.")
    teachers = _views(teacher_logits, "teacher_logits", fn)
    _check_same_shapes(teachers, [f"teacher_logits[{i}]" for i in range(len(teachers))], fn)
    _check_center(tf.TensorSpec(center.shape), teachers[0], fn)
    stacked = tf.stop_gradient(tf.concat(teachers, axis=0))  # (T * B, K)
    local_sum = tf.reduce_sum(stacked, axis=0)
    local_count = tf.cast(tf.shape(stacked)[0], tf.float32)
    batch_center = distributed.all_sum(local_sum) / distributed.all_sum(local_count)
    ema_update([center], [tf.ensure_shape(batch_center, tuple(center.shape))], momentum)
