"""Projective transforms of image batches (TensorFlow's ImageProjectiveTransformV3) and their matrices.

A matrix row `[a0, a1, a2, b0, b1, b2, c0, c1]` maps an *output* pixel (x, y) to the *input* point
`((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`, `k = c0 x + c1 y + 1` (Keras' convention).
All functions take and return float32 `(B, H, W, 3)` images in [0, 1]. They are the kernel and the
graph keras-cv 0.9 built (`keras_cv.src.utils.preprocessing.transform` / `get_rotation_matrix`), so
every op's output is bit for bit what it was when it called keras-cv (tools/bench_augment.py
`--keras_cv` checks it; `keras.ops.image.affine_transform` runs the same kernel).
"""

from __future__ import annotations

import tensorflow as tf


def affine(images, matrices, fill_mode: str = "constant", interpolation: str = "bilinear") -> tf.Tensor:
    """Applies per-image projective transforms `(B, 8)` (output -> input mapping); fills with 0.

    Example:
    >>> images = tf.reshape(tf.range(2 * 4 * 4 * 3, dtype=tf.float32), (2, 4, 4, 3)) / 96.0
    >>> shifted = affine(images, translation_matrix(tf.constant([1.0, 0.0]), tf.constant([0.0, 0.0])))
    >>> bool(tf.reduce_all(shifted[0, :, 1:] == images[0, :, :-1])), bool(tf.reduce_all(shifted[1] == images[1]))
    (True, True)
    """
    with tf.name_scope("transform"):
        size = tf.shape(images)[1:3]
        static = None if tf.executing_eagerly() else tf.get_static_value(size)
        out = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=matrices,
            output_shape=size if static is None else tf.constant(static, tf.int32),
            fill_value=tf.constant(0.0, tf.float32),
            fill_mode=fill_mode.upper(),
            interpolation=interpolation.upper(),
        )
    out.set_shape(images.shape)
    return out


def rotation_matrix(angles, height, width) -> tf.Tensor:
    """`(B, 8)` matrices that turn images counter-clockwise (on screen) by `angles` (B,) radians about their centre.

    Written as keras-cv 0.9's `get_rotation_matrix` (each `tf.cos` / `tf.sin` its own op, columns
    concatenated): in a traced function Grappler then rewrites it alike, so the rotations stay bit
    for bit what they were with keras-cv (a shared `cos` and one `tf.stack` differ by 1 ulp there).
    """
    angles = tf.reshape(angles, [-1])
    with tf.name_scope("rotation_matrix"):
        x_offset = ((width - 1) - (tf.cos(angles) * (width - 1) - tf.sin(angles) * (height - 1))) / 2.0
        y_offset = ((height - 1) - (tf.sin(angles) * (width - 1) + tf.cos(angles) * (height - 1))) / 2.0
        columns = [tf.cos(angles), -tf.sin(angles), x_offset, tf.sin(angles), tf.cos(angles), y_offset]
        return tf.concat([*(c[:, None] for c in columns), tf.zeros((tf.shape(angles)[0], 2), tf.float32)], axis=1)


def translation_matrix(tx, ty) -> tf.Tensor:
    """`(B, 8)` matrices that shift image content by (tx, ty) pixels, each (B,): right and down for positive values."""
    tx = tf.reshape(tf.cast(tx, tf.float32), [-1])
    ty = tf.reshape(tf.cast(ty, tf.float32), [-1])
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return tf.stack([one, zero, -tx, zero, one, -ty, zero, zero], axis=1)
