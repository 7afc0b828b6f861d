"""A linear hypernetwork: a code u gives a (d, d) matrix W(u) that maps a feature vector y to W(u) y."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_eqssl")
class LinearHypernetwork(keras.layers.Layer):
    """`(y, u) -> W(u) y` with `W(u) = reshape(Dense(d * d, no bias)(u), (d, d))` (row = output).

    SIE's `ParametrizedNet` with a linear hypernetwork (Garrido et al., ICML 2023; u = the known
    relative rotation, a quaternion) and STL's `EquiTrans` (Yu et al., NeurIPS 2024; u = a learned
    transformation representation): one linear block, no bias, no nonlinearity.

    Inputs: `y` `(B, d)`, `u` `(B, k)`. Output: `(B, d)`, `out[b, i] = sum_j W(u_b)[i, j] y[b, j]`.

    Args:
        dim: d, the width of `y` (and of the output).
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> layer = LinearHypernetwork(8)
    >>> y, u = np.ones((2, 8), "float32"), np.ones((2, 4), "float32")
    >>> tuple(layer(y, u).shape)
    (2, 8)
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        if int(dim) < 1:
            raise ValueError(f"LinearHypernetwork: dim must be >= 1; received {dim}")
        self.dim = int(dim)
        self.weights_from_code = keras.layers.Dense(
            self.dim * self.dim, use_bias=False, name="weights_from_code", dtype=self.dtype_policy
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
        return {**super().get_config(), "dim": self.dim}
