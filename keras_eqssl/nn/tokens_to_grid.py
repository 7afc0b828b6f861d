"""Lays a token sequence back on the spatial grid of a reference feature map."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_eqssl")
class TokensToGrid(keras.layers.Layer):
    """Reshapes tokens `(B, h * w, C)` to `(B, h, w, C)`, taking `h, w` from a reference map.

    `keras.layers.Reshape` needs a static target shape; this layer reads `h` and `w` from a
    reference tensor `(B, h, w, ...)` at run time, so it works for any input image size.

    Examples:

    ```python
    import numpy as np
    TokensToGrid()(np.zeros((2, 12, 8), "float32"), np.zeros((2, 3, 4, 5), "float32")).shape  # (2, 3, 4, 8)
    ```
    """

    def call(self, tokens, reference):
        shape = tf.shape(reference)
        return tf.reshape(tokens, [shape[0], shape[1], shape[2], tokens.shape[-1]])

    def compute_output_shape(self, tokens_shape, reference_shape):
        return (tokens_shape[0], reference_shape[1], reference_shape[2], tokens_shape[-1])
