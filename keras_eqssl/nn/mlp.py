"""MLP projector / predictor head: Linear-BN-ReLU blocks and a final Linear."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_eqssl.nn.attribute_config import AttributeConfig

NORMS = ("batch", "layer")


@keras.saving.register_keras_serializable(package="keras_eqssl")
class MLP(AttributeConfig, keras.layers.Layer):
    """Projector / predictor MLP of SSL methods: `[Linear-BN-ReLU] * (n - 1)`, then a Linear.

    The head of SimCLR (Chen et al., ICML 2020), BYOL (Grill et al., NeurIPS 2020), VICReg (Bardes
    et al., ICLR 2022) and SIE (Garrido et al., ICML 2023): every hidden layer is a Dense followed
    by BatchNormalization and ReLU; the last layer is a Dense with no BN or activation (SimSiam's
    projector adds a BN after it: `last_batch_norm=True`; E-SSL's ends in a BN without learnable
    scale and shift, torch's `BatchNorm1d(affine=False)`: `last_norm_affine=False` too). `MLP([2048, 2048, 256])` maps
    `(B, d) -> (B, 256)` with two hidden layers of 2048. Any leading dimensions work:
    `(B, N, d) -> (B, N, 256)`, with BN statistics taken over all of them.

    Under `tf.distribute`, `synchronized=True` uses `BatchNormalization(synchronized=True)`, so
    batch statistics are computed over the global batch (as SimCLR/BYOL/VICReg do on TPUs/GPUs).

    Args:
        units: list of int. Output units of each Dense; the last entry is the output dimension.
        use_last_bias: bool. Whether the last Dense has a bias (VICReg/SIE: False).
        last_batch_norm: bool. Whether a BN (no ReLU) follows the last Dense (SimSiam).
        last_norm_affine: bool. Whether that last norm has a learnable scale and shift (gamma,
            beta). `False` (needs `last_batch_norm=True`): it only standardises, as torch's
            `BatchNorm1d(affine=False)` at the end of E-SSL's projector.
        synchronized: bool. Synchronise BN statistics across replicas.
        activation: str. The hidden activation.
        bn_momentum: float. Keras BatchNormalization momentum (0.9 = torch's 0.1).
        bn_epsilon: float. BatchNormalization epsilon.
        norm: str. `"batch"` (BatchNormalization, the default) or `"layer"` (LayerNormalization:
            per example, E-SSL's rotation head); `synchronized` and `bn_momentum` apply to "batch".
        **kwargs: standard `keras.layers.Layer` arguments.

    Examples:

    ```python
    import numpy as np
    projector = MLP([2048, 2048, 256], use_last_bias=False)
    projector(np.zeros((4, 512), "float32")).shape  # (4, 256)
    ```
    """

    config_attributes = (
        "units",
        "use_last_bias",
        "last_batch_norm",
        "last_norm_affine",
        "synchronized",
        "activation",
        "bn_momentum",
        "bn_epsilon",
        "norm",
    )
    config_as_lists = ("units",)

    def __init__(
        self,
        units: Sequence[int],
        use_last_bias: bool = True,
        last_batch_norm: bool = False,
        last_norm_affine: bool = True,
        synchronized: bool = False,
        activation: str = "relu",
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        norm: str = "batch",
        **kwargs,
    ):
        units = [int(u) for u in (units if isinstance(units, Sequence) else [units])]
        if not units or min(units) < 1:
            raise ValueError(f"`units` must be a non-empty list of positive ints. Received: units={units}")
        if norm not in NORMS:
            raise ValueError(f"MLP: norm must be one of {NORMS}; received {norm!r}")
        if not last_norm_affine and not last_batch_norm:
            raise ValueError("MLP: last_norm_affine=False is for the last norm; it needs last_batch_norm=True")
        super().__init__(**kwargs)
        self.units = units
        self.norm = norm
        self.use_last_bias = bool(use_last_bias)
        self.last_batch_norm = bool(last_batch_norm)
        self.last_norm_affine = bool(last_norm_affine)
        self.synchronized = bool(synchronized)
        self.activation = activation
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.activation_fn = keras.activations.get(activation)

        self.dense_layers, self.norm_layers = [], []
        for i, u in enumerate(units):
            last = i == len(units) - 1
            self.dense_layers.append(
                keras.layers.Dense(
                    u, use_bias=self.use_last_bias if last else True, name=f"dense{i}", dtype=self.dtype_policy
                )
            )
            if not last or self.last_batch_norm:
                self.norm_layers.append(self._norm_layer(i, affine=self.last_norm_affine or not last))

    def _norm_layer(self, i: int, affine: bool = True) -> keras.layers.Layer:
        if self.norm == "layer":
            return keras.layers.LayerNormalization(
                epsilon=self.bn_epsilon, center=affine, scale=affine, name=f"ln{i}", dtype=self.dtype_policy
            )
        return keras.layers.BatchNormalization(
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            center=affine,
            scale=affine,
            synchronized=self.synchronized,
            name=f"bn{i}",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError(f"The last input dimension must be known. Received: input_shape={input_shape}")
        shape = tuple(input_shape)
        for i, dense in enumerate(self.dense_layers):
            dense.build(shape)
            shape = (*shape[:-1], self.units[i])
            if i < len(self.norm_layers):
                self.norm_layers[i].build(shape)

    def call(self, x, training=None):
        last = len(self.dense_layers) - 1
        for i, dense in enumerate(self.dense_layers):
            x = dense(x)
            if i < len(self.norm_layers):
                x = self.norm_layers[i](x, training=training)
            if i < last:
                x = self.activation_fn(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units[-1])
