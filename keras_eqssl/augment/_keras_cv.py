"""The one place that touches keras-cv.

keras-cv's vectorized layers split sampling (`get_random_transformation_batch`) from applying
(`augment_images(images, transformations)`); we use the apply half with parameters we sampled
and recorded ourselves. keras-cv is frozen (moved to keras-hub), so every touch point lives in
this file: swapping it out means rewriting these functions only.

All functions take and return float32 `(B, H, W, 3)` images in [0, 1].
"""

from __future__ import annotations

import functools

import tensorflow as tf

_VALUE_RANGE = (0.0, 1.0)


@functools.cache
def _layers():
    # Imported lazily: keras_cv's import pulls in much of keras-cv (about a second).
    import keras_cv

    L = keras_cv.layers
    return {
        "solarize": L.Solarization(value_range=_VALUE_RANGE),
    }


def init() -> None:
    """Builds the keras-cv layer objects; call it eagerly (their constructors create
    variables, which cannot happen inside a tf.data function)."""
    _layers()


def _per_image(values, images):
    return tf.reshape(tf.cast(values, images.dtype), [-1, 1, 1, 1])


def solarize(images, threshold):
    """Inverts pixels at or above `threshold` (B,) in [0, 1]."""
    t = _per_image(threshold, images) * 255.0
    return _layers()["solarize"].augment_images(images, {"thresholds": t, "additions": tf.zeros_like(t)})


def _preprocessing():
    from keras_cv.src.utils import preprocessing

    return preprocessing


def affine(images, matrices, fill_mode="constant", interpolation="bilinear"):
    """Applies per-image projective transforms, 8 values each (output -> input mapping)."""
    out = _preprocessing().transform(images, matrices, fill_mode=fill_mode, fill_value=0.0, interpolation=interpolation)
    out.set_shape(images.shape)
    return out


def rotation_matrix(angles, height, width):
    """Projective matrices that rotate images counter-clockwise by `angles` (B,) radians."""
    return _preprocessing().get_rotation_matrix(tf.reshape(angles, [-1]), height, width)


def translation_matrix(tx, ty):
    """Projective matrices that shift image content by (tx, ty) pixels, each (B,)."""
    # keras-cv's get_translation_matrix loses a dimension on empty graph-mode batches.
    tx = tf.reshape(tf.cast(tx, tf.float32), [-1])
    ty = tf.reshape(tf.cast(ty, tf.float32), [-1])
    one, zero = tf.ones_like(tx), tf.zeros_like(tx)
    return tf.stack([one, zero, -tx, zero, one, -ty, zero, zero], axis=1)
