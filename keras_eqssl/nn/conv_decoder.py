"""Light convolutional decoder: tokens on a grid -> an image, by stride-2 up-convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.fused_batch_norm import FusedBatchNormalization


def _pair(value, what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"`{what}` must be a positive int or a pair of them. Received: {what}={value!r}")
    return pair


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ConvDecoder(AttributeConfig, keras.layers.Layer):
    """Decodes a grid of tokens into an image: per-token Dense, reshape, k up-convolutions, 3-channel conv.

    The reconstruction decoder of the cross-attention method (Wang, Krajsek and Scharr,
    arXiv 2412.03314), following its follow-up's "single linear layer followed by four
    convolutional layers": a Dense(`hidden_dim`) on every token, a reshape to the token grid
    `(h, w)`, then k times Conv2DTranspose(4x4, stride 2, 'same') + BN + ReLU, and a final linear
    3x3 conv to 3 channels. k is set by `target_size = grid_size * 2**k` (8x8 tokens -> 64x64
    image: k = 3). Used only for pretraining.

    Input `(B, h * w, d)` tokens (row-major, as `Backbone` returns them); output
    `(B, H, W, 3)` with `(H, W) = target_size`, in the dtype policy's compute dtype.

    Args:
        grid_size: int or tuple of two ints. The token grid `(h, w)`.
        target_size: int or tuple of two ints. The output image size; must be `grid_size * 2**k`
            for one integer k >= 0 on both sides.
        hidden_dim: int. Units of the per-token Dense.
        filters: int, list of int or None. Channels of the k up-convolutions: a list of length k,
            or an int c meaning `c, c/2, c/4, ...`; `None` means `hidden_dim / 2` halved each step.
            Never below 8.
        output_channels: int. Channels of the output image.
        bn_momentum: float. Keras BatchNormalization momentum.
        bn_epsilon: float. BatchNormalization epsilon.
        synchronized: bool. Synchronise BN statistics across replicas under `tf.distribute`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Examples:

    ```python
    import numpy as np
    decoder = ConvDecoder(grid_size=8, target_size=64, hidden_dim=64)  # 3 up-convs: 32, 16, 8 channels
    decoder(np.zeros((2, 64, 256), "float32")).shape  # (2, 64, 64, 3)
    ```
    """

    config_attributes = (
        "grid_size",
        "target_size",
        "hidden_dim",
        "filters",
        "output_channels",
        "bn_momentum",
        "bn_epsilon",
        "synchronized",
    )
    config_as_lists = ("grid_size", "target_size")

    def __init__(
        self,
        grid_size: int | Sequence[int],
        target_size: int | Sequence[int],
        hidden_dim: int = 256,
        filters: int | Sequence[int] | None = None,
        output_channels: int = 3,
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        synchronized: bool = False,
        **kwargs,
    ):
        grid = _pair(grid_size, "grid_size")
        target = _pair(target_size, "target_size")
        ratios = (target[0] / grid[0], target[1] / grid[1])
        num_up = max(0, max(0, round(ratios[0])).bit_length() - 1)
        if ratios[0] != ratios[1] or target[0] != grid[0] * 2**num_up or target[1] != grid[1] * 2**num_up:
            raise ValueError(
                "`target_size` must be `grid_size` times a power of two (the same on both sides), since every "
                f"up-convolution doubles the size; e.g. grid {grid} -> {tuple(g * 8 for g in grid)}. "
                f"Received: grid_size={grid_size!r}, target_size={target_size!r}"
            )
        if hidden_dim < 1 or output_channels < 1:
            raise ValueError(
                f"`hidden_dim` and `output_channels` must be >= 1. Received: hidden_dim={hidden_dim}, output_channels={output_channels}"
            )
        if filters is None or isinstance(filters, int):
            start = hidden_dim // 2 if filters is None else int(filters)
            if start < 1:
                raise ValueError(f"`filters` must be positive. Received: filters={filters!r}")
            filter_list = [max(start // 2**i, 8) for i in range(num_up)]
        else:
            filter_list = [int(f) for f in filters]
            if len(filter_list) != num_up or (filter_list and min(filter_list) < 1):
                raise ValueError(
                    f"`filters` must list {num_up} positive ints, one per up-convolution from {grid} to {target}. "
                    f"Received: filters={filters!r}"
                )
        super().__init__(**kwargs)
        self.grid_size = grid
        self.target_size = target
        self.hidden_dim = int(hidden_dim)
        self.filters = filters if filters is None or isinstance(filters, int) else filter_list
        self.output_channels = int(output_channels)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.num_upsamplings = num_up
        self.synchronized = bool(synchronized)

        policy = self.dtype_policy
        self.embed = keras.layers.Dense(self.hidden_dim, name="embed", dtype=policy)
        self.up_convs = [
            keras.layers.Conv2DTranspose(f, 4, 2, padding="same", name=f"up{i}", dtype=policy)
            for i, f in enumerate(filter_list)
        ]
        self.up_norms = [
            FusedBatchNormalization(
                momentum=bn_momentum, epsilon=bn_epsilon, synchronized=self.synchronized, name=f"up{i}_bn", dtype=policy
            )
            for i in range(num_up)
        ]
        self.output_conv = keras.layers.Conv2D(self.output_channels, 3, padding="same", name="output", dtype=policy)
        self._filter_list = filter_list

    def build(self, input_shape):
        num_tokens = self.grid_size[0] * self.grid_size[1]
        if len(input_shape) != 3 or input_shape[-1] is None or input_shape[1] not in (None, num_tokens):
            raise ValueError(
                f"ConvDecoder expects tokens (B, {num_tokens}, d) for grid_size={self.grid_size}. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.embed.build(input_shape)
        height, width = self.grid_size
        channels = self.hidden_dim
        for conv, norm, f in zip(self.up_convs, self.up_norms, self._filter_list):
            conv.build((None, height, width, channels))
            height, width, channels = 2 * height, 2 * width, f
            norm.build((None, height, width, channels))
        self.output_conv.build((None, height, width, channels))

    def call(self, tokens, training=None):
        x = self.embed(tokens)
        x = ops.reshape(x, (-1, self.grid_size[0], self.grid_size[1], self.hidden_dim))
        for conv, norm in zip(self.up_convs, self.up_norms):
            x = ops.relu(norm(conv(x), training=training))
        return self.output_conv(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.target_size, self.output_channels)
