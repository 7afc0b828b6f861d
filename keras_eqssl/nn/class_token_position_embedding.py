"""Prepends a learned CLS token and adds learned position embeddings, resized to the patch grid."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_eqssl.nn.attribute_config import AttributeConfig


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


INTERPOLATIONS = ("dino", "tf")


def dino_bicubic_matrix(size: int, new_size) -> tf.Tensor:
    """The `(new_size, size)` float32 matrix of DINO's position-embedding resize along one axis.

    DINO (and GTSA, which copies its ViT) resizes the position grid with PyTorch's
    `F.interpolate(mode="bicubic", align_corners=False, scale_factor=(new_size + 0.1) / size)`:
    output j reads the source coordinate `u = (j + 1/2) size / (new_size + 0.1) - 1/2` through the
    cubic convolution kernel with a = -0.75 on the indices `floor(u) - 1 .. floor(u) + 2`, clamped to
    the grid. `new_size` may be a scalar tensor (a grid known only at run time).
    """
    a = -0.75
    new = tf.cast(new_size, tf.float64)
    scale = tf.cast(tf.cast(size, tf.float64) / (new + 0.1), tf.float32)  # torch: float(1 / scale_factor)
    real = scale * (tf.range(tf.cast(new_size, tf.int32), dtype=tf.float32) + 0.5) - 0.5
    start = tf.floor(real)
    t = real - start
    near = lambda x: ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0  # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a  # noqa: E731  1 < |x| < 2
    weights = (far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t))
    matrix = 0.0
    for k, w in enumerate(weights):
        index = tf.clip_by_value(tf.cast(start, tf.int32) - 1 + k, 0, size - 1)
        matrix += tf.one_hot(index, size, dtype=tf.float32) * w[:, None]
    return matrix


def _constant_dino_matrix(size: int, new_size: int) -> tf.Tensor:
    with tf.init_scope():
        return tf.constant(dino_bicubic_matrix(size, new_size).numpy())


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ClassTokenPositionEmbedding(AttributeConfig, keras.layers.Layer):
    """CLS token + learned position embeddings for a Vision Transformer.

    As in Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021): a learned CLS token is
    prepended to the patch tokens and a learned position embedding (one per patch of a
    `grid_size` grid, plus one for CLS) is added. For an input whose patch grid differs from
    `grid_size`, the patch position embeddings are resized bicubically to the new grid, so one
    model runs on any image size: `interpolation="dino"` is DINO's (and GTSA's) resize, PyTorch's
    bicubic (a = -0.75) at the scale factor `(new + 0.1) / old` (see `dino_bicubic_matrix`), which
    a model loaded from their checkpoints needs to give their outputs on other sizes;
    `interpolation="tf"` is `tf.image.resize(method="bicubic")` (Keys' a = -0.5, half-pixel
    centres). Written here because Keras/keras-hub's ViT embeddings are tied to one input size.

    Input `(B, h, w, D)` patch embeddings; output `(B, 1 + h * w, D)` tokens, CLS first, the
    patches in row-major order.

    Args:
        grid_size: int or tuple of two ints. The patch grid the position table is stored for
            (e.g. 14 for ViT-*/16 at 224 px).
        initializer_range: float. Std of the truncated-normal init of the CLS token and positions.
        interpolation: str. `"dino"` (the default) or `"tf"`: how the positions are resized.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Examples:

    ```python
    import numpy as np
    layer = ClassTokenPositionEmbedding(grid_size=4)
    layer(np.zeros((2, 4, 4, 32), "float32")).shape  # (2, 17, 32)
    layer(np.zeros((2, 6, 5, 32), "float32")).shape  # (2, 31, 32), positions resized
    ```
    """

    config_attributes = ("grid_size", "initializer_range", "interpolation")
    config_as_lists = ("grid_size",)

    def __init__(
        self, grid_size: int | Sequence[int], initializer_range: float = 0.02, interpolation: str = "dino", **kwargs
    ):
        grid = (grid_size, grid_size) if isinstance(grid_size, int) else tuple(int(g) for g in grid_size)
        if len(grid) != 2 or min(grid) < 1:
            raise ValueError(f"`grid_size` must be a positive int or a pair of them. Received: grid_size={grid_size!r}")
        if initializer_range <= 0:
            raise ValueError(f"`initializer_range` must be > 0. Received: initializer_range={initializer_range}")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={interpolation!r}"
            )
        super().__init__(**kwargs)
        self.grid_size = grid
        self.initializer_range = float(initializer_range)
        self.interpolation = interpolation

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
            if self.interpolation == "dino":
                rows = dino_bicubic_matrix(self.grid_size[0], height)
                cols = dino_bicubic_matrix(self.grid_size[1], width)
                grid = tf.reshape(grid_pos, [self.grid_size[0], self.grid_size[1], dim])
                grid = tf.einsum("Hh,hwd,Ww->HWd", rows, grid, cols)
            else:
                grid = tf.reshape(grid_pos, [1, self.grid_size[0], self.grid_size[1], dim])
                grid = tf.image.resize(grid, tf.stack([height, width]), method="bicubic")
            return tf.concat([cls_pos, tf.reshape(grid, [1, height * width, dim])], axis=1)

        if static_height is not None and static_width is not None:
            # A known grid: the bicubic resize as two constant matrices (XLA has no ResizeBicubic).
            matrix = bicubic_matrix if self.interpolation == "tf" else _constant_dino_matrix
            rows = matrix(self.grid_size[0], static_height)
            cols = matrix(self.grid_size[1], static_width)
            grid = tf.reshape(grid_pos, [self.grid_size[0], self.grid_size[1], dim])
            grid = tf.einsum("Hh,hwd,Ww->HWd", rows, grid, cols)
            return tf.concat([cls_pos, tf.reshape(grid, [1, static_height * static_width, dim])], axis=1)
        same = tf.logical_and(tf.equal(height, self.grid_size[0]), tf.equal(width, self.grid_size[1]))
        return tf.cond(same, lambda: table, resized)

    def compute_output_shape(self, input_shape):
        batch, height, width, dim = input_shape
        tokens = None if height is None or width is None else 1 + height * width
        return (batch, tokens, dim)

    @classmethod
    def from_config(cls, config: dict):
        # A config saved before `interpolation` existed was trained with TF's resize.
        return cls(**{"interpolation": "tf", **config})
