"""A pre-norm Transformer encoder block (self-attention + MLP), as used in ViT."""

from __future__ import annotations

import keras

from keras_eqssl.nn.attribute_config import AttributeConfig


@keras.saving.register_keras_serializable(package="keras_eqssl")
class TransformerEncoderBlock(AttributeConfig, keras.layers.Layer):
    """Pre-LayerNorm Transformer encoder block of a Vision Transformer.

    `x + MHSA(LN(x))`, then `x + MLP(LN(x))` with a GELU MLP, as in Dosovitskiy et al.,
    "An Image is Worth 16x16 Words" (ICLR 2021) and timm's `Block`. Attention uses
    `keras.layers.MultiHeadAttention` (q, k, v and output projections with biases), so the
    parameter count matches timm's ViT.

    Args:
        num_heads: int. Attention heads; must divide the token dimension.
        mlp_dim: int. Hidden units of the MLP (4 x the token dimension in ViT).
        layer_norm_epsilon: float. Epsilon of both LayerNorms.
        dropout_rate: float. Dropout on the attention weights and after each MLP layer.
        drop_path_rate: float. Stochastic depth (Huang et al., ECCV 2016), as timm's / DINO's
            `DropPath`: in training each example skips each residual branch with this
            probability, and a kept branch is scaled by 1 / (1 - rate).
        kernel_initializer: initializer of every kernel (q, k, v, output, MLP); biases start at 0.
            `VisionTransformer` passes N(0, 0.02^2), timm's and DINO's.
        **kwargs: standard `keras.layers.Layer` arguments.

    Examples:

    ```python
    import numpy as np
    block = TransformerEncoderBlock(num_heads=2, mlp_dim=64)
    block(np.zeros((2, 17, 32), "float32")).shape  # (2, 17, 32)
    ```
    """

    config_attributes = ("num_heads", "mlp_dim", "layer_norm_epsilon", "dropout_rate", "drop_path_rate")

    def __init__(
        self,
        num_heads: int,
        mlp_dim: int,
        layer_norm_epsilon: float = 1e-6,
        dropout_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        if num_heads < 1 or mlp_dim < 1:
            raise ValueError(
                f"`num_heads` and `mlp_dim` must be >= 1. Received: num_heads={num_heads}, mlp_dim={mlp_dim}"
            )
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"`dropout_rate` must be in [0, 1). Received: dropout_rate={dropout_rate}")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"`drop_path_rate` must be in [0, 1). Received: drop_path_rate={drop_path_rate}")
        super().__init__(**kwargs)
        self.drop_path_rate = float(drop_path_rate)
        self.seed_generator = keras.random.SeedGenerator(0) if self.drop_path_rate else None
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.dropout_rate = float(dropout_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None or dim % self.num_heads:
            raise ValueError(
                f"The token dimension must be known and divisible by `num_heads`. "
                f"Received: input_shape={input_shape}, num_heads={self.num_heads}"
            )
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm1", dtype=self.dtype_policy
        )
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads,
            dim // self.num_heads,
            dropout=self.dropout_rate,
            kernel_initializer=self.kernel_initializer,
            name="attention",
            dtype=self.dtype_policy,
        )
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm2", dtype=self.dtype_policy
        )
        self.mlp_in = keras.layers.Dense(
            self.mlp_dim,
            activation="gelu",
            kernel_initializer=self.kernel_initializer,
            name="mlp_in",
            dtype=self.dtype_policy,
        )
        self.mlp_out = keras.layers.Dense(
            dim, kernel_initializer=self.kernel_initializer, name="mlp_out", dtype=self.dtype_policy
        )
        self.dropout = keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy)
        self.norm1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build((*input_shape[:-1], self.mlp_dim))

    def _drop_path(self, branch, training):
        if not self.drop_path_rate or not training:
            return branch
        keep = 1.0 - self.drop_path_rate
        shape = (keras.ops.shape(branch)[0],) + (1,) * (len(branch.shape) - 1)
        mask = keras.ops.floor(keep + keras.random.uniform(shape, seed=self.seed_generator, dtype=branch.dtype))
        return branch / keep * mask

    def call(self, x, training=None):
        y = self.norm1(x)
        x = x + self._drop_path(self.attention(y, y, training=training), training)
        y = self.dropout(self.mlp_in(self.norm2(x)), training=training)
        return x + self._drop_path(self.dropout(self.mlp_out(y), training=training), training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}
