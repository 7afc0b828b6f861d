"""Dense (per-patch) projector and predictor of GTSA: 3x3 convolutions on a ViT's patch grid."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.nn.attribute_config import AttributeConfig


def _conv(filters: int, kernel_size: int, name: str, dtype) -> keras.layers.Conv2D:
    """A 'same'-padded Conv2D with a bias, kernel N(0, 0.02^2) and zero bias."""
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        use_bias=True,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.02),
        bias_initializer="zeros",
        name=name,
        dtype=dtype,
    )


def _layer_norm(epsilon: float, name: str, dtype) -> keras.layers.LayerNormalization:
    """LayerNormalization over the channels, without the affine gamma / beta."""
    return keras.layers.LayerNormalization(axis=-1, epsilon=epsilon, center=False, scale=False, name=name, dtype=dtype)


def _check_positive(value, what: str, cls: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{cls}: `{what}` must be a positive int. Received: {what}={value!r}")
    return int(value)


def _check_epsilon(epsilon, cls: str) -> float:
    if not float(epsilon) > 0.0:
        raise ValueError(f"{cls}: `epsilon` must be > 0. Received: epsilon={epsilon!r}")
    return float(epsilon)


def _check_grid(input_shape, cls: str) -> None:
    if len(input_shape) != 4 or input_shape[-1] is None:
        raise ValueError(
            f"{cls} expects a feature map (B, h, w, C) with a known C. Received: input_shape={tuple(input_shape)}"
        )


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ConvProjector(AttributeConfig, keras.layers.Layer):
    """GTSA's dense projector: `num_blocks` residual blocks `x + GELU(LN(Conv3x3(x)))`, then a 1x1 conv.

    The projector of GTSA (Kim et al. 2023), applied to the grid of patch tokens of a ViT so that
    every position keeps its own (equivariant) embedding while a 3x3 neighbourhood mixes context:

        x_{i+1} = x_i + GELU(LN(Conv3x3(x_i)))      i = 0 .. num_blocks - 1
        y       = Conv1x1(x_{num_blocks})

    Conv3x3 has `units` filters, 'same' padding and a bias; LN normalises the channels of each
    position with no affine parameters; GELU is the exact (erf) one. The residual needs the input
    to have `units` channels. Kernels are initialised N(0, 0.02^2), biases 0. Under a mixed
    precision policy the convolutions run in the compute dtype and LayerNormalization in float32
    (Keras's default).

    Input `(B, h, w, units)`; output `(B, h, w, output_units)`.

    Args:
        units: int. Filters of every 3x3 conv; must equal the input channels when `num_blocks > 0`.
        output_units: int. Filters of the final 1x1 conv (the embedding dimension).
        num_blocks: int >= 0. Number of residual blocks (0: only the 1x1 conv).
        epsilon: float. LayerNormalization epsilon.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> projector = ConvProjector(units=16, output_units=8)
    >>> tuple(projector(np.zeros((2, 4, 4, 16), "float32")).shape)
    (2, 4, 4, 8)
    """

    config_attributes = ("units", "output_units", "num_blocks", "epsilon")

    def __init__(self, units: int, output_units: int, num_blocks: int = 2, epsilon: float = 1e-5, **kwargs):
        units = _check_positive(units, "units", "ConvProjector")
        output_units = _check_positive(output_units, "output_units", "ConvProjector")
        if isinstance(num_blocks, bool) or int(num_blocks) != num_blocks or int(num_blocks) < 0:
            raise ValueError(f"ConvProjector: `num_blocks` must be an int >= 0. Received: num_blocks={num_blocks!r}")
        epsilon = _check_epsilon(epsilon, "ConvProjector")
        super().__init__(**kwargs)
        self.units = units
        self.output_units = output_units
        self.num_blocks = int(num_blocks)
        self.epsilon = epsilon

        policy = self.dtype_policy
        self.block_convs = [_conv(units, 3, f"block{i}_conv", policy) for i in range(self.num_blocks)]
        self.block_norms = [_layer_norm(epsilon, f"block{i}_norm", policy) for i in range(self.num_blocks)]
        self.output_conv = _conv(output_units, 1, "output_conv", policy)

    def build(self, input_shape):
        _check_grid(input_shape, "ConvProjector")
        channels = input_shape[-1]
        if self.num_blocks > 0 and channels != self.units:
            raise ValueError(
                f"ConvProjector: the residual blocks add Conv3x3(x) to x, so the input channels must equal "
                f"`units`. Received: units={self.units}, input_shape={tuple(input_shape)}"
            )
        shape = (*input_shape[:-1], channels)
        for conv, norm in zip(self.block_convs, self.block_norms):
            conv.build(shape)
            norm.build(shape)
        self.output_conv.build(shape)

    def call(self, x):
        for conv, norm in zip(self.block_convs, self.block_norms):
            x = x + ops.gelu(norm(conv(x)), approximate=False)
        return self.output_conv(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_units)


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ConvPredictor(AttributeConfig, keras.layers.Layer):
    """GTSA's dense predictor: `Conv1x1(GELU(LN(Conv3x3(x))))`, no residual.

    The predictor of GTSA (Kim et al. 2023) on the projected patch grid (see `ConvProjector`):

        y = Conv1x1(GELU(LN(Conv3x3(x))))

    Both convs have `units` filters and a bias ('same' padding), LN normalises the channels of
    each position with no affine parameters, GELU is the exact (erf) one. Kernels are initialised
    N(0, 0.02^2), biases 0.

    Input `(B, h, w, C)` (any C); output `(B, h, w, units)`.

    Args:
        units: int. Filters of both convs.
        epsilon: float. LayerNormalization epsilon.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> predictor = ConvPredictor(units=8)
    >>> tuple(predictor(np.zeros((2, 4, 4, 8), "float32")).shape)
    (2, 4, 4, 8)
    """

    config_attributes = ("units", "epsilon")

    def __init__(self, units: int, epsilon: float = 1e-5, **kwargs):
        units = _check_positive(units, "units", "ConvPredictor")
        epsilon = _check_epsilon(epsilon, "ConvPredictor")
        super().__init__(**kwargs)
        self.units = units
        self.epsilon = epsilon

        policy = self.dtype_policy
        self.hidden_conv = _conv(units, 3, "hidden_conv", policy)
        self.norm = _layer_norm(epsilon, "norm", policy)
        self.output_conv = _conv(units, 1, "output_conv", policy)

    def build(self, input_shape):
        _check_grid(input_shape, "ConvPredictor")
        self.hidden_conv.build(tuple(input_shape))
        hidden_shape = (*input_shape[:-1], self.units)
        self.norm.build(hidden_shape)
        self.output_conv.build(hidden_shape)

    def call(self, x):
        return self.output_conv(ops.gelu(self.norm(self.hidden_conv(x)), approximate=False))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)
