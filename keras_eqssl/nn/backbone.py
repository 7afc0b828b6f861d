"""The base class of every backbone: one output convention for ResNets and ViTs."""

from __future__ import annotations

import keras

# The keys every backbone returns, in this order.
OUTPUT_KEYS = ("feature_map", "tokens", "pooled")


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Backbone(keras.Model):
    """Base class for feature extractors that return a spatial map, its tokens and a pooled vector.

    Subclasses build a functional graph inside `__init__` (keras-hub style) and pass it to
    `super().__init__(inputs=..., outputs=...)`. Calling a backbone on a batch of normalised
    float images `(B, H, W, 3)` returns a dict:

    - `"feature_map"`: `(B, h, w, C)`, the last spatial feature map (ResNet: the pre-pool
      output of the last stage; ViT: the patch tokens laid back on their grid);
    - `"tokens"`: `(B, h * w, C)`, the same features as a token sequence in row-major order
      (ViT: the patch tokens, without the CLS token);
    - `"pooled"`: `(B, C)`, the global representation (ResNet: global average pooling of the
      feature map; ViT: the CLS token or the mean of the patch tokens).

    Objectives that need spatial tokens (e.g. cross-attention reconstruction) check
    `backbone.has_spatial_map`; `feature_dim` is C and `feature_stride` is H / h.

    Subclasses set `self._feature_dim`, `self._feature_stride` and `self._has_spatial_map`, and
    extend `get_config()` with their constructor arguments; `from_config` calls `cls(**config)`.
    """

    _has_spatial_map = True
    _feature_dim: int | None = None
    _feature_stride: int | None = None

    @property
    def has_spatial_map(self) -> bool:
        """Whether `"feature_map"` / `"tokens"` carry more than one spatial position."""
        return self._has_spatial_map

    @property
    def feature_dim(self) -> int:
        """C, the channel count of `feature_map`, `tokens` and `pooled`."""
        return self._feature_dim

    @property
    def feature_stride(self) -> int:
        """How many input pixels one feature-map position spans (32 for an ImageNet ResNet, 16 for ViT-*/16)."""
        return self._feature_stride

    def grid_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        """The `(h, w)` of the feature map for an input of `image_size` (an int or `(H, W)`)."""
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        stride = self.feature_stride
        return -(-height // stride), -(-width // stride)

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)
