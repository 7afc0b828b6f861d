"""A linear hypernetwork: a code u gives a (d, d) matrix W(u) that maps a feature vector y to W(u) y."""

from __future__ import annotations

import keras
from keras import ops

TORCH_LINEAR = "torch_linear"


def initializer(identifier) -> keras.initializers.Initializer:
    """A Keras initializer; `"torch_linear"` is `nn.Linear`'s default weight init, uniform(±1/sqrt(fan_in)).

    torch draws `kaiming_uniform_(a=sqrt(5))`: bound `sqrt(6 / ((1 + 5) fan_in)) = 1 / sqrt(fan_in)`,
    which is `VarianceScaling(1/3, "fan_in", "uniform")` (bound `sqrt(3 * scale / fan_in)`).
    """
    if identifier == TORCH_LINEAR:
        return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform")
    return keras.initializers.get(identifier)


@keras.saving.register_keras_serializable(package="keras_eqssl")
class LinearHypernetwork(keras.layers.Layer):
    """`(y, u) -> W(u) y` with `W(u) = reshape(Dense(d * d, no bias)(u), (d, d))` (row = output).

    SIE's `ParametrizedNet` with a linear hypernetwork (Garrido et al., ICML 2023; u = the known
    relative rotation, a quaternion) and STL's `EquiTrans` (Yu et al., NeurIPS 2024; u = a learned
    transformation representation): one linear block, no bias, no nonlinearity.

    Inputs: `y` `(B, d)`, `u` `(B, k)`. Output: `(B, d)`, `out[b, i] = sum_j W(u_b)[i, j] y[b, j]`.

    The Dense kernel `(k, d*d)` is torch's `hypernet.weight` `(d*d, k)` transposed: its column
    `i * d + j` holds `W[i, j]`, as `w.view(-1, d, d)` reads the authors' output.

    Args:
        dim: d, the width of `y` (and of the output).
        kernel_initializer: a Keras initializer (name, dict or instance) for the Dense kernel, or
            `"torch_linear"`: `nn.Linear`'s default, uniform(±1/sqrt(k)) (what SIE's and STL's
            code start from). The default, `"glorot_uniform"`, is uniform(±sqrt(6/(k + d*d))),
            about 18x smaller at k = 128, d = 512.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = LinearHypernetwork(8)
    >>> y, u = np.ones((2, 8), "float32"), np.ones((2, 4), "float32")
    >>> tuple(layer(y, u).shape)
    (2, 8)
    """

    def __init__(self, dim: int, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(dim) < 1:
            raise ValueError(f"LinearHypernetwork: dim must be >= 1; received {dim}")
        self.dim = int(dim)
        self.kernel_initializer = kernel_initializer
        self.weights_from_code = keras.layers.Dense(
            self.dim * self.dim,
            use_bias=False,
            kernel_initializer=initializer(kernel_initializer),
            name="weights_from_code",
            dtype=self.dtype_policy,
        )

    def build(self, y_shape, u_shape=None):
        if u_shape is None:
            raise ValueError("LinearHypernetwork.build needs the shapes of y and u")
        if y_shape[-1] is not None and y_shape[-1] != self.dim:
            raise ValueError(f"LinearHypernetwork({self.dim}): y must be (B, {self.dim}); received {tuple(y_shape)}")
        self.weights_from_code.build(tuple(u_shape))

    def matrices(self, u):
        """`(B, d, d)`: W(u) for each row of `u` `(B, k)`."""
        return ops.reshape(self.weights_from_code(u), (-1, self.dim, self.dim))

    def call(self, y, u):
        return ops.einsum("bij,bj->bi", self.matrices(u), y)

    def compute_output_shape(self, y_shape, u_shape=None):
        return tuple(y_shape)

    def get_config(self) -> dict:
        init = self.kernel_initializer
        if not isinstance(init, (str, dict)):
            init = keras.initializers.serialize(init)
        return {**super().get_config(), "dim": self.dim, "kernel_initializer": init}
