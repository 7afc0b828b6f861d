"""Input checks shared by the losses: float32 casting and shape errors that name what was received."""

from __future__ import annotations

import tensorflow as tf


def as_float32(x, name: str) -> tf.Tensor:
    """Converts `x` to a float32 tensor (loss math stays float32 under mixed precision)."""
    x = tf.convert_to_tensor(x)
    if not (x.dtype.is_floating or x.dtype.is_integer):
        raise ValueError(f"`{name}` must be a real-valued tensor; received dtype {x.dtype.name}.")
    return tf.cast(x, tf.float32)


def _compatible(a: tf.TensorShape, b: tf.TensorShape) -> bool:
    return a.rank is None or b.rank is None or a.is_compatible_with(b)


def check_embeddings(a: tf.Tensor, b: tf.Tensor, names: tuple[str, str], fn: str) -> None:
    """Two `(N, D)` embeddings of the same shape, or a ValueError naming both received shapes."""
    for x, name in zip((a, b), names):
        if x.shape.rank is not None and x.shape.rank != 2:
            raise ValueError(f"{fn}: `{name}` must have shape (batch, dim); received {name}.shape={x.shape}.")
    if not _compatible(a.shape, b.shape):
        raise ValueError(
            f"{fn}: `{names[0]}` and `{names[1]}` must have the same shape; "
            f"received {names[0]}.shape={a.shape} and {names[1]}.shape={b.shape}."
        )


def check_same_shape(a: tf.Tensor, b: tf.Tensor, names: tuple[str, str], fn: str) -> None:
    """Two tensors of any (equal) shape with a batch dimension, or a ValueError naming the shapes."""
    for x, name in zip((a, b), names):
        if x.shape.rank == 0:
            raise ValueError(f"{fn}: `{name}` needs a batch dimension; received a scalar.")
    if not _compatible(a.shape, b.shape):
        raise ValueError(
            f"{fn}: `{names[0]}` and `{names[1]}` must have the same shape; "
            f"received {names[0]}.shape={a.shape} and {names[1]}.shape={b.shape}."
        )


def global_embedding_pair(z1, z2, fn: str, gather_distributed: bool, why: str = "") -> tuple[tf.Tensor, tf.Tensor]:
    """Checks two `(N, D)` embedding batches and returns them as float32, gathered over replicas.

    Losses built on batch statistics (VICReg, Barlow Twins) need at least 2 rows; under
    `tf.distribute` with `gather_distributed` the statistics are those of the global batch.
    """
    from keras_eqssl.losses import distributed

    z1, z2 = as_float32(z1, "z1"), as_float32(z2, "z2")
    check_embeddings(z1, z2, ("z1", "z2"), fn)
    if distributed.num_replicas() == 1 and z1.shape[0] is not None and z1.shape[0] < 2:
        raise ValueError(f"{fn}: needs a batch of at least 2{why}; received z1.shape={z1.shape}.")
    if gather_distributed:
        z1, z2 = distributed.all_gather(z1), distributed.all_gather(z2)
    return z1, z2
