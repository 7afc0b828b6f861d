"""Stateless seeds: every random draw is a pure function of (seed, step, replica, view, op).

A seed is a shape-(2,) int32 tensor, the form `tf.random.stateless_*` ops take. Seeds are
derived by folding integers in with `tf.random.experimental.stateless_fold_in`, so a resumed
or distributed run that asks for (seed, step, replica, view) gets the very same numbers as an
uninterrupted single-device run.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SeedLike = int | tuple[int, int] | tf.Tensor


def as_seed(seed: SeedLike) -> tf.Tensor:
    """Returns `seed` as a shape-(2,) int32 tensor.

    Args:
        seed: a Python or NumPy int, a scalar integer tensor, a pair of ints, or a shape-(2,)
            integer tensor.
    """
    if isinstance(seed, (int, np.integer)):
        return tf.constant([0, int(seed)], dtype=tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0 and seed.dtype.is_integer:
        return tf.stack([tf.constant(0, tf.int32), tf.cast(seed, tf.int32)])
    if not seed.dtype.is_integer:
        raise TypeError(f"A seed must be integer; received dtype {seed.dtype.name}.")
    if seed.shape.rank is not None and seed.shape.as_list() != [2]:
        raise ValueError(f"A seed tensor must have shape (2,); received shape {seed.shape}.")
    return tf.cast(seed, tf.int32)


def fold(seed: SeedLike, *data) -> tf.Tensor:
    """Folds each integer of `data` into `seed`, in order, and returns the new seed."""
    seed = as_seed(seed)
    for value in data:
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(value, tf.int32))
    return tf.cast(seed, tf.int32)


def make_seed(seed: SeedLike, step=0, replica=0, view=0) -> tf.Tensor:
    """The seed of one view of one batch: a pure function of (seed, step, replica, view).

    Example:
    >>> s = make_seed(42, step=10, replica=0, view=1)
    >>> bool(tf.reduce_all(s == make_seed(42, step=10, replica=0, view=1)))
    True
    """
    return fold(seed, step, replica, view)
