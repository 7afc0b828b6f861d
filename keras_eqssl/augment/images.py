"""Input checks and conversion shared by every op: batches of uint8 or float images in, float32 out."""

from __future__ import annotations

import tensorflow as tf


def to_float_rgb(images, where: str = "images") -> tf.Tensor:
    """Checks a batch of images and returns it as float32 RGB in [0, 1].

    Args:
        images: `(B, H, W, C)` tensor, `uint8` (0-255) or float (already in [0, 1]); C is 1 or 3.
            One-channel images are repeated to three channels.
        where: a name for the error messages (which op or policy received the tensor).

    Returns:
        `(B, H, W, 3)` float32 tensor.

    Raises:
        ValueError / TypeError that names the received shape or dtype.
    """
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.string:
        raise TypeError(
            f"{where}: expected decoded images, received a string tensor of shape "
            f"{images.shape}; decode them first (e.g. tf.io.decode_image)."
        )
    if not (images.dtype.is_floating or images.dtype.is_integer):
        raise TypeError(f"{where}: expected uint8 or float images, received dtype {images.dtype.name}.")
    rank = images.shape.rank
    if rank is not None and rank != 4:
        hint = " (a single image? batch it first, e.g. images[None] or dataset.batch(n))" if rank == 3 else ""
        raise ValueError(
            f"{where}: expected a batch of images of shape (B, H, W, C), received rank {rank} "
            f"shape {images.shape}{hint}."
        )
    channels = images.shape[-1] if rank is not None else None
    if channels is not None and channels not in (1, 3):
        raise ValueError(
            f"{where}: expected 1 (grayscale) or 3 (RGB) channels, received {channels} channels "
            f"in shape {images.shape}."
        )
    if rank is None or channels is None:
        tf.debugging.assert_rank(images, 4, message=f"{where}: expected images of shape (B, H, W, C)")
        tf.debugging.Assert(
            tf.logical_or(tf.shape(images)[-1] == 1, tf.shape(images)[-1] == 3),
            [f"{where}: expected 1 or 3 channels, received shape", tf.shape(images)],
        )
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    elif images.dtype.is_integer:
        raise TypeError(f"{where}: integer images must be uint8 (0-255), received {images.dtype.name}.")
    else:
        images = tf.cast(images, tf.float32)
    if channels == 1:
        images = tf.image.grayscale_to_rgb(images)
    elif channels is None:
        images = tf.cond(
            tf.shape(images)[-1] == 1,
            lambda: tf.tile(images, [1, 1, 1, 3]),
            lambda: images,
        )
        images.set_shape(images.shape[:-1].concatenate([3]))
    return images


def image_size(images: tf.Tensor) -> tf.Tensor:
    """(H, W) of a batch as a float32 tensor."""
    return tf.cast(tf.shape(images)[1:3], tf.float32)
