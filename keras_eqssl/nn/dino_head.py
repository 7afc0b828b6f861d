"""DINO's projection head: an MLP to a bottleneck, L2 normalisation, a weight-normalised prototype layer."""

from __future__ import annotations

import keras
from keras import ops

from keras_eqssl.nn.attribute_config import AttributeConfig


@keras.saving.register_keras_serializable(package="keras_eqssl")
class DINOHead(AttributeConfig, keras.layers.Layer):
    """The head of DINO (Caron et al., ICCV 2021, "Emerging Properties in Self-Supervised Vision Transformers").

    An MLP of `num_layers` Dense layers (`hidden_units` wide, exact GELU between them, the last
    one to `bottleneck_units` with no activation), L2 normalisation, then a bias-free
    weight-normalised linear layer (Salimans & Kingma, 2016) to the `output_units` prototypes:

        h = MLP(x),    u = h / max(|h|_2, 1e-12),    logits = u W
        W[:, k] = g_k * V[:, k] / |V[:, k]|_2          V: (bottleneck_units, output_units)

    Each output column of V is normalised over its input dimension. With `norm_last_layer=True`
    (DINO's default) the gain g is fixed to 1 (a non-trainable weight), so every column of W has
    unit norm and the logits are cosine similarities in [-1, 1]. Dense kernels are initialised
    from a truncated normal with stddev 0.02 and biases to 0; V is initialised like the original's
    `nn.Linear` (uniform in +-1/sqrt(bottleneck_units)), g to 1. With `num_layers=1` the MLP is a
    single Dense to `bottleneck_units`. The normalisations run in float32; the matmuls in the
    compute dtype.

    Input `(B, D)` (any leading dimensions); output `(B, output_units)` logits.

    Args:
        output_units: int. Number of prototypes K (the logits' width).
        hidden_units: int. Width of the hidden Dense layers.
        bottleneck_units: int. Output width of the MLP (the input of the prototype layer).
        num_layers: int >= 1. Number of Dense layers in the MLP.
        norm_last_layer: bool. Fix the weight-norm gain g to 1 (not trainable).
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> head = DINOHead(output_units=64, hidden_units=32, bottleneck_units=16)
    >>> tuple(head(np.ones((2, 8), "float32")).shape)
    (2, 64)
    """

    config_attributes = ("output_units", "hidden_units", "bottleneck_units", "num_layers", "norm_last_layer")

    def __init__(
        self,
        output_units: int = 65536,
        hidden_units: int = 2048,
        bottleneck_units: int = 256,
        num_layers: int = 3,
        norm_last_layer: bool = True,
        **kwargs,
    ):
        for name, value in (
            ("output_units", output_units),
            ("hidden_units", hidden_units),
            ("bottleneck_units", bottleneck_units),
            ("num_layers", num_layers),
        ):
            if isinstance(value, bool) or int(value) != value or int(value) < 1:
                raise ValueError(f"DINOHead: `{name}` must be a positive int. Received: {name}={value!r}")
        super().__init__(**kwargs)
        self.output_units = int(output_units)
        self.hidden_units = int(hidden_units)
        self.bottleneck_units = int(bottleneck_units)
        self.num_layers = int(num_layers)
        self.norm_last_layer = bool(norm_last_layer)

        widths = [self.hidden_units] * (self.num_layers - 1) + [self.bottleneck_units]
        self.dense_layers = [
            keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                bias_initializer="zeros",
                name=f"dense{i}",
                dtype=self.dtype_policy,
            )
            for i, units in enumerate(widths)
        ]

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"DINOHead: the last input dimension must be known. Received: input_shape={input_shape}")
        shape = tuple(input_shape)
        for dense in self.dense_layers:
            dense.build(shape)
            shape = (*shape[:-1], dense.units)
        limit = 1.0 / self.bottleneck_units**0.5
        # float32 weights read without autocasting: the weight normalisation runs in float32.
        self.last_layer_v = self.add_weight(
            shape=(self.bottleneck_units, self.output_units),
            initializer=keras.initializers.RandomUniform(-limit, limit),
            name="last_layer_v",
            autocast=False,
        )
        self.last_layer_g = self.add_weight(
            shape=(self.output_units,),
            initializer="ones",
            trainable=not self.norm_last_layer,
            name="last_layer_g",
            autocast=False,
        )

    def last_layer_kernel(self):
        """The effective prototype matrix W `(bottleneck_units, output_units)` (float32): `g * V / |V|_col`."""
        v = ops.cast(self.last_layer_v, "float32")
        g = ops.cast(self.last_layer_g, "float32")
        return v * (g / ops.sqrt(ops.sum(ops.square(v), axis=0)))

    def call(self, x):
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if i < self.num_layers - 1:
                x = ops.gelu(x, approximate=False)
        x = ops.normalize(ops.cast(x, "float32"), axis=-1, epsilon=1e-12)
        return ops.matmul(ops.cast(x, self.compute_dtype), ops.cast(self.last_layer_kernel(), self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_units)
