"""Gradient accumulation: one optimizer update from the averaged gradients of k micro-batches.

`SSLModel.compile(accumulate_steps=k)` (the main job's `config.train.accumulate_steps`) splits
each replica's batch into k micro-batches inside one training step, runs the forward and backward
pass of one micro-batch at a time, and applies the mean of their gradients once. A training step
is still one optimizer update: the step counter, the learning-rate and momentum schedules, the
EMA teachers and the checkpoints count updates, and the data stream is the same as with k = 1.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def check_accumulate_steps(value) -> int:
    """`value` as an int >= 1, or `ValueError` naming it (an int-valued float such as 2.0 is taken).

    >>> check_accumulate_steps(4)
    4
    """
    if isinstance(value, bool) or not float(value).is_integer() or int(value) < 1:
        raise ValueError(f"accumulate_steps must be an integer >= 1 (1: no accumulation); received {value!r}")
    return int(value)


def micro_batches(batch, k: int) -> list:
    """A nest of `(N, ...)` tensors -> k nests of the consecutive `(N / k, ...)` row slices.

    N must be a multiple of k: `ValueError` when a static N is not (a batch known only when the
    step runs fails in TensorFlow's `Split`); `None` leaves stay `None`.

    >>> import numpy as np
    >>> parts = micro_batches({"x": np.arange(6)}, 3)
    >>> [p["x"].numpy().tolist() for p in parts]
    [[0, 1], [2, 3], [4, 5]]
    """
    leaves = [t if t is None else tf.convert_to_tensor(t) for t in tf.nest.flatten(batch)]
    rows = {t.shape[0] for t in leaves if t is not None and t.shape.rank and t.shape[0] is not None}
    if any(n % k for n in rows):
        raise ValueError(
            f"accumulate_steps={k}: a batch of {sorted(rows)} rows does not split into {k} micro-batches; "
            f"use a batch (per replica) that is a multiple of {k}"
        )
    splits = [[None] * k if t is None else tf.split(t, k, axis=0) for t in leaves]
    return [tf.nest.pack_sequence_as(batch, [s[i] for s in splits]) for i in range(k)]


def _add(a, b):
    """The sum of two gradients (an `IndexedSlices` becomes dense); None stays None."""
    if a is None or b is None:
        return None
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _after(tensors: list, nest):
    """`nest` with every tensor made to wait for `tensors`: micro-batch i + 1's forward pass starts
    only once micro-batch i's gradients exist, so their activations are never held together."""
    if not tensors:
        return nest
    with tf.control_dependencies(tensors):
        return tf.nest.map_structure(lambda t: t if t is None else tf.identity(t), nest)


def accumulated_gradients(
    compute: Callable, batches: list, variables: list, scale_loss: Callable = lambda x: x
) -> tuple[list, tf.Tensor, dict]:
    """`(mean gradients, mean total, mean terms)` of `compute(batch) -> (total, terms)` over `batches`.

    Each batch's gradient of `scale_loss(total)` with respect to `variables` is taken in its own
    tape, one batch after the other; the gradients, totals and terms are averaged over the batches.

    >>> import keras, numpy as np
    >>> w = keras.Variable(np.float32(2.0))
    >>> grads, total, _ = accumulated_gradients(
    ...     lambda x: (w * x, {}), [np.float32(1.0), np.float32(3.0)], [w])
    >>> float(grads[0]), float(total)
    (2.0, 4.0)
    """
    grads, totals, terms_list = None, [], []
    for batch in batches:
        batch = _after([g for g in grads or [] if g is not None], batch)
        with tf.GradientTape() as tape:
            total, terms = compute(batch)
            scaled = scale_loss(total)
        step = tape.gradient(scaled, variables)
        grads = step if grads is None else [_add(a, b) for a, b in zip(grads, step)]
        totals.append(total)
        terms_list.append(terms)
    k = len(batches)
    mean_grads = [None if g is None else g / k for g in grads]
    mean_terms = {name: sum(t[name] for t in terms_list) / k for name in terms_list[0]}
    return mean_grads, sum(totals) / k, mean_terms
