"""Parameter-free cross-attention: softmax(Q K^T * scale) V with K = V, and no weights."""

from __future__ import annotations

import math

import keras
from keras import ops

SCALES = ("sqrt_d", "none")


@keras.saving.register_keras_serializable(package="keras_eqssl")
class CrossAttention(keras.layers.Layer):
    """Parameter-free cross-attention that blends the tokens of one view into the layout of another.

    The fusion of the cross-attention reconstruction method (Wang, Krajsek and Scharr,
    "Equivariant Representation Learning for Augmentation-based Self-Supervised Learning via
    Image Reconstruction", arXiv 2412.03314): with no W_Q, W_K or W_V, the raw tokens are the
    queries, keys and values:

        A = softmax(Q K^T * scale, axis=-1)    Q: (B, N, d) query tokens, K = V: (B, M, d) source tokens
        H = A V                                A: (B, N, M), H: (B, N, d)

    Each output token is a convex combination of the source tokens, placed by the query tokens.
    In the method, Q are the equivariant tokens of the view to reconstruct and K = V those of the
    other view. The layer has no weights. The math runs in float32 whatever the dtype policy
    (mixed precision included), and the output is float32.

    Args:
        scale: str or float. `"sqrt_d"` (default) multiplies the logits by `1 / sqrt(d)`;
            `"none"` by 1; a positive float by that float (e.g. an inverse temperature).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        query: `(B, N, d)` query tokens.
        source: `(B, M, d)` key/value tokens.
        return_attention: bool. Also return the attention matrix `(B, N, M)`.

    Examples:

    ```python
    import numpy as np
    e1 = np.random.rand(2, 64, 256).astype("float32")  # equivariant tokens of view 1
    e2 = np.random.rand(2, 64, 256).astype("float32")  # ... of view 2
    fused = CrossAttention()(e2, e1)  # (2, 64, 256): view-1 content in view-2 layout
    ```
    """

    def __init__(self, scale: str | float = "sqrt_d", **kwargs):
        if isinstance(scale, str):
            if scale not in SCALES:
                raise ValueError(f"`scale` must be one of {SCALES} or a positive float. Received: scale={scale!r}")
        elif (
            isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0 or not math.isfinite(scale)
        ):
            raise ValueError(f"`scale` must be one of {SCALES} or a positive float. Received: scale={scale!r}")
        kwargs.setdefault("dtype", "float32")  # softmax logits in float32 even under mixed precision
        super().__init__(**kwargs)
        self.scale = scale if isinstance(scale, str) else float(scale)
        self.built = True  # no weights to create

    def _scale_for(self, dim: int) -> float:
        if self.scale == "sqrt_d":
            return 1.0 / math.sqrt(dim)
        if self.scale == "none":
            return 1.0
        return self.scale

    def call(self, query, source, return_attention: bool = False):
        if query.shape[-1] is None or query.shape[-1] != source.shape[-1]:
            raise ValueError(
                "`query` and `source` must have the same, known last dimension. "
                f"Received: query.shape={query.shape}, source.shape={source.shape}"
            )
        query = ops.cast(query, "float32")
        source = ops.cast(source, "float32")
        logits = ops.einsum("bnd,bmd->bnm", query, source) * self._scale_for(query.shape[-1])
        attention = ops.softmax(logits, axis=-1)  # subtracts the row max: stable for large logits
        fused = ops.einsum("bnm,bmd->bnd", attention, source)
        return (fused, attention) if return_attention else fused

    def compute_output_shape(self, query_shape, source_shape):
        return tuple(query_shape)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(scale=self.scale)
        return config
