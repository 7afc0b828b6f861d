"""Prepends a learned CLS token and adds learned position embeddings, resized to the patch grid."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


def bicubic_matrix(size: int, new_size: int) -> tf.Tensor:
    """The `(new_size, size)` float32 matrix `M` with `M @ x` = `tf.image.resize(x, bicubic)` along one axis.

    `tf.image.resize`'s bicubic kernel is separable, so resizing an `(h, w)` grid is
    `M_h @ grid @ M_w^T`: matrix products, which XLA compiles (it has no `ResizeBicubic` kernel).
    Made eagerly from the resize of an identity, so it equals `tf.image.resize` by construction.
    """
    with tf.init_scope():
        eye = tf.reshape(tf.eye(size), [1, size, 1, size])
        resized = tf.image.resize(eye, [new_size, 1], method="bicubic")
        return tf.constant(tf.reshape(resized, [new_size, size]).numpy())


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ClassTokenPositionEmbedding(keras.layers.Layer):
    """CLS token + learned position embeddings for a Vision Transformer.

    As in Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021): a learned CLS token is
    prepended to the patch tokens and a learned position embedding (one per patch of a
    `grid_size` grid, plus one for CLS) is added. For an input whose patch grid differs from
    `grid_size`, the patch position embeddings are resized bicubically to the new grid (as DINO
    and timm do), so one model runs on any image size. Written here because Keras/keras-hub's ViT
    embeddings are tied to one input size.

    Input `(B, h, w, D)` patch embeddings; output `(B, 1 + h * w, D)` tokens, CLS first, the
    patches in row-major order.

    Args:
        grid_size: int or tuple of two ints. The patch grid the position table is stored for
            (e.g. 14 for ViT-*/16 at 224 px).
        initializer_range: float. Std of the truncated-normal init of the CLS token and positions.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Examples:

    ```python
    import numpy as np
    layer = ClassTokenPositionEmbedding(grid_size=4)
    layer(np.zeros((2, 4, 4, 32), "float32")).shape  # (2, 17, 32)
    layer(np.zeros((2, 6, 5, 32), "float32")).shape  # (2, 31, 32), positions resized
    ```
    """

    def __init__(self, grid_size: int | Sequence[int], initializer_range: float = 0.02, **kwargs):
        grid = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(int(g) for g in grid_size)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"`grid_size` must be a positive int or a pair of them. Received: grid_size={grid_size!r}")
        if initializer_range <= 0:
            raise ValueError(f"`initializer_range` must be > 0. Received: initializer_range={initializer_range}")
        super().__init__(**kwargs)
        self.grid_size = grid
        self.initializer_range = float(initializer_range)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                f"The last dimension of the patch embeddings must be known. Received: input_shape={input_shape}"
            )
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.class_token = self.add_weight(shape=(1, 1, dim), initializer=init, name="class_token")
        self.position_embedding = self.add_weight(
            shape=(1, 1 + self.grid_size[0] * self.grid_size[1], dim), initializer=init, name="position_embedding"
        )

    def call(self, patches):
        shape = tf.shape(patches)
        batch, height, width, dim = shape[0], shape[1], shape[2], patches.shape[-1]
        tokens = tf.reshape(patches, [batch, height * width, dim])
        cls = tf.tile(tf.cast(self.class_token, tokens.dtype), [batch, 1, 1])
        tokens = tf.concat([cls, tokens], axis=1)
        return tokens + tf.cast(self._positions(patches.shape[1], patches.shape[2], height, width), tokens.dtype)

    def _positions(self, static_height, static_width, height, width):
        """The (1, 1 + h*w, D) position table for an h x w grid; resized only when the grid differs."""
        table = tf.cast(self.position_embedding, tf.float32)  # resize in float32 (mixed precision included)
        if (static_height, static_width) == self.grid_size:
            return table
        dim = table.shape[-1]
        cls_pos, grid_pos = table[:, :1], table[:, 1:]

        def resized():
            grid = tf.reshape(grid_pos, [1, self.grid_size[0], self.grid_size[1], dim])
            grid = tf.image.resize(grid, tf.stack([height, width]), method="bicubic")
            return tf.concat([cls_pos, tf.reshape(grid, [1, height * width, dim])], axis=1)

        if static_height is not None and static_width is not None:
            # A known grid: the same bicubic resize as two constant matrices (XLA has no ResizeBicubic).
            rows = bicubic_matrix(self.grid_size[0], static_height)
            cols = bicubic_matrix(self.grid_size[1], static_width)
            grid = tf.reshape(grid_pos, [self.grid_size[0], self.grid_size[1], dim])
            grid = tf.einsum("Hh,hwd,Ww->HWd", rows, grid, cols)
            return tf.concat([cls_pos, tf.reshape(grid, [1, static_height * static_width, dim])], axis=1)
        same = tf.logical_and(tf.equal(height, self.grid_size[0]), tf.equal(width, self.grid_size[1]))
        return tf.cond(same, lambda: table, resized)

    def compute_output_shape(self, input_shape):
        batch, height, width, dim = input_shape
        tokens = None if height is None or width is None else 1 + height * width
        return (batch, tokens, dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(grid_size=list(self.grid_size), initializer_range=self.initializer_range)
        return config
