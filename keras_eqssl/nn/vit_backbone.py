"""Vision Transformer backbone (ViT-S/16 and smaller presets) returning patch tokens and a pooled vector."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.backbone import Backbone
from keras_eqssl.nn.class_token_position_embedding import ClassTokenPositionEmbedding
from keras_eqssl.nn.tokens_to_grid import TokensToGrid
from keras_eqssl.nn.transformer_encoder_block import TransformerEncoderBlock

POOLINGS = ("cls", "mean")
INITS = ("timm", "glorot")

# Keyword presets for `VisionTransformer(**VIT_PRESETS[name])` (see also `backbone_from_name`).
VIT_PRESETS = {
    "vit_s16": dict(patch_size=16, hidden_dim=384, depth=12, num_heads=6, mlp_dim=1536, image_size=224),
    "vit_b16": dict(patch_size=16, hidden_dim=768, depth=12, num_heads=12, mlp_dim=3072, image_size=224),
    "vit_tiny": dict(patch_size=8, hidden_dim=32, depth=2, num_heads=2, mlp_dim=64, image_size=32),
}


def nearest_patch_multiples(size: int, patch_size: int) -> tuple[int, ...]:
    """The multiples of `patch_size` nearest to `size` (below and above), e.g. `(8, 16)` for 12 px and patch 8."""
    below = size - size % patch_size
    return tuple(s for s in (below, below + patch_size) if s >= patch_size)


def patch_fit_problem(size: int, patch_size: int) -> str | None:
    """Why an image side of `size` px does not split into whole `patch_size` patches, or None when it does.

    The patch embedding is a stride-`patch_size` convolution without padding: the last
    `size % patch_size` rows or columns of the image would never reach the network.

    Example:
    >>> patch_fit_problem(12, 8)
    '12 px is not a multiple of the patch size 8: the patch grid covers 8 px of it and would ignore the last 4 px; use 8 or 16'
    """
    size, patch_size = int(size), int(patch_size)
    if size >= patch_size and not size % patch_size:
        return None
    extra = size % patch_size
    sizes = " or ".join(str(s) for s in nearest_patch_multiples(size, patch_size))
    return (
        f"{size} px is not a multiple of the patch size {patch_size}: the patch grid covers {size - extra} px of it "
        f"and would ignore the last {extra} px; use {sizes}"
    )


def _known_shape(x) -> tuple:
    """The shape of `x` as a tuple (None for unknown sides), or () when its rank is unknown."""
    shape = getattr(x, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return ()
    return tuple(shape)


@keras.saving.register_keras_serializable(package="keras_eqssl")
class VisionTransformer(AttributeConfig, Backbone):
    """Vision Transformer feature extractor returning its patch tokens and a pooled vector.

    The ViT of Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image
    Recognition at Scale" (ICLR 2021), without a classification head: a `patch_size` x
    `patch_size` strided conv embeds patches, a learned CLS token and learned position embeddings
    are added (resized bicubically when the patch grid differs from `image_size / patch_size`,
    so any input size that is a multiple of `patch_size` works), then `depth` pre-norm
    Transformer blocks and a final LayerNorm.
    `init="timm"` initialises as timm's and DINO's ViT (and GTSA's copy of it): every Linear kernel
    N(0, 0.02^2) (their `trunc_normal_(std=.02)` truncates at +-2, 100 std: a normal), biases 0,
    LayerNorms 1 / 0, the patch conv as PyTorch's default Conv2d (kernel and bias
    U(+-1/sqrt(fan_in))), the CLS token and positions truncated normal with std 0.02.
    `VisionTransformer(**VIT_PRESETS["vit_s16"])` is ViT-S/16 (21.7M parameters).

    Outputs (see `Backbone`): `"tokens"` `(B, h*w, D)` are the normalised patch tokens (CLS
    excluded), `"feature_map"` `(B, h, w, D)` the same on the patch grid (`h = H // patch_size`),
    and `"pooled"` `(B, D)` the normalised CLS token (`pooling="cls"`) or the mean of the patch
    tokens (`pooling="mean"`).

    An input whose height or width is not a multiple of `patch_size` is refused (`ValueError` when
    the shape is known when the model is called or traced, `InvalidArgumentError` when it is known
    only at run time): the patch embedding would silently ignore its last rows or columns.
    Resize or crop such images first.

    Args:
        patch_size: int. Side of the square patches (16 for ViT-*/16).
        hidden_dim: int. Token dimension D (384 for ViT-S).
        depth: int. Number of Transformer blocks (12 for ViT-S).
        num_heads: int. Attention heads; must divide `hidden_dim` (6 for ViT-S).
        mlp_dim: int or None. Hidden units of each block's MLP; `None` means `4 * hidden_dim`.
        image_size: int. The input size the position table is stored for (a multiple of
            `patch_size`); other sizes are served by resizing it.
        pooling: str. `"cls"` or `"mean"`: what `"pooled"` is.
        layer_norm_epsilon: float. Epsilon of every LayerNorm (1e-6 as in timm).
        dropout_rate: float. Dropout inside the blocks (0 for SSL pretraining).
        drop_path_rate: float. Stochastic depth of the last block; block i gets
            `drop_path_rate * i / (depth - 1)` (timm's and DINO's rule). GTSA's student: 0.1.
        init: str. `"timm"` (the default: timm's, DINO's and GTSA's init, above) or `"glorot"`
            (Keras' defaults: Glorot-uniform kernels, zero biases).
        position_interpolation: str. How the positions are resized for another grid: `"dino"` (the
            default: DINO's and GTSA's PyTorch bicubic) or `"tf"` (`tf.image.resize`); see
            `ClassTokenPositionEmbedding`.
        image_shape: tuple. Input shape; `(None, None, 3)` accepts any size.
        name: str. The model name.

    Examples:

    ```python
    import numpy as np
    from keras_eqssl.nn import VIT_PRESETS, VisionTransformer

    vit = VisionTransformer(**VIT_PRESETS["vit_tiny"])  # patch 8, dim 32, depth 2, heads 2
    out = vit(np.zeros((2, 48, 48, 3), "float32"))
    out["feature_map"].shape  # (2, 6, 6, 32)
    out["tokens"].shape       # (2, 36, 32)
    out["pooled"].shape       # (2, 32)
    ```
    """

    config_attributes = (
        "patch_size",
        "hidden_dim",
        "depth",
        "num_heads",
        "mlp_dim",
        "image_size",
        "pooling",
        "layer_norm_epsilon",
        "dropout_rate",
        "drop_path_rate",
        "init",
        "position_interpolation",
        "image_shape",
    )
    config_as_lists = ("image_shape",)

    def __init__(
        self,
        patch_size: int = 16,
        hidden_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_dim: int | None = None,
        image_size: int = 224,
        pooling: str = "cls",
        layer_norm_epsilon: float = 1e-6,
        dropout_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init: str = "timm",
        position_interpolation: str = "dino",
        image_shape: Sequence[int | None] = (None, None, 3),
        name: str = "vit",
        **kwargs,
    ):
        # --- validate ------------------------------------------------------------------------
        if min(patch_size, hidden_dim, depth, num_heads) < 1:
            raise ValueError(
                "`patch_size`, `hidden_dim`, `depth` and `num_heads` must be >= 1. Received: "
                f"patch_size={patch_size}, hidden_dim={hidden_dim}, depth={depth}, num_heads={num_heads}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                f"`hidden_dim` must be divisible by `num_heads`. Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
            )
        if image_size < patch_size or image_size % patch_size:
            raise ValueError(
                f"`image_size` must be a multiple of `patch_size`. Received: image_size={image_size}, patch_size={patch_size}"
            )
        if init not in INITS:
            raise ValueError(f"`init` must be one of {INITS}. Received: init={init!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(
                f"`image_shape` must be (H, W, 3) with H, W ints or None. Received: image_shape={image_shape}"
            )
        mlp_dim = 4 * hidden_dim if mlp_dim is None else int(mlp_dim)

        # --- graph ---------------------------------------------------------------------------
        inputs = keras.Input(shape=image_shape, name="images")
        conv_init, kernel_init = {}, "glorot_uniform"
        if init == "timm":
            bound = (patch_size * patch_size * image_shape[-1]) ** -0.5  # torch's Conv2d default
            uniform = keras.initializers.RandomUniform(-bound, bound)
            conv_init = dict(kernel_initializer=uniform, bias_initializer=uniform)
            kernel_init = keras.initializers.RandomNormal(stddev=0.02)
        patches = keras.layers.Conv2D(
            hidden_dim, patch_size, patch_size, padding="valid", name="patch_embedding", **conv_init
        )(inputs)
        x = ClassTokenPositionEmbedding(
            image_size // patch_size, interpolation=position_interpolation, name="class_token_position_embedding"
        )(patches)
        for i in range(depth):
            x = TransformerEncoderBlock(
                num_heads,
                mlp_dim,
                layer_norm_epsilon=layer_norm_epsilon,
                dropout_rate=dropout_rate,
                drop_path_rate=drop_path_rate * i / max(depth - 1, 1),
                kernel_initializer=kernel_init,
                name=f"block{i}",
            )(x)
        x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="norm")(x)
        tokens = x[:, 1:]
        feature_map = TokensToGrid(name="feature_map")(tokens, patches)
        if pooling == "cls":
            pooled = x[:, 0]
        else:
            pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(tokens)
        super().__init__(
            inputs=inputs, outputs={"feature_map": feature_map, "tokens": tokens, "pooled": pooled}, name=name, **kwargs
        )

        # --- config --------------------------------------------------------------------------
        self.patch_size = int(patch_size)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_dim = mlp_dim
        self.image_size = int(image_size)
        self.pooling = pooling
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.dropout_rate = float(dropout_rate)
        self.drop_path_rate = float(drop_path_rate)
        self.init = init
        self.position_interpolation = position_interpolation
        self.image_shape = image_shape
        self._feature_dim = self.hidden_dim
        self._feature_stride = self.patch_size

    def __call__(self, inputs, *args, **kwargs):
        # Checked before Keras wraps `call`'s errors (which would print the whole input array).
        self._check_known_sides(_known_shape(inputs))
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, training=None, mask=None, **kwargs):
        return super().call(self._whole_patches(inputs), training=training, mask=mask, **kwargs)

    def _check_known_sides(self, shape: tuple) -> None:
        """`ValueError` when a known height or width of an input of `shape` is not a multiple of the patch size."""
        if len(shape) != 4:
            return
        for axis, side in (("height", shape[1]), ("width", shape[2])):
            problem = None if side is None else patch_fit_problem(side, self.patch_size)
            if problem:
                raise ValueError(
                    f"{self.name}: the input's {axis}: {problem} (resize or crop the images first). "
                    f"Received images of shape {tuple(shape)}."
                )

    def _whole_patches(self, images):
        """`images`, asserted at run time to split into whole patches when their sides were unknown at trace."""
        shape = _known_shape(images)
        if len(shape) != 4 or None not in shape[1:3]:
            return images
        remainder = tf.shape(images)[1:3] % self.patch_size
        message = (
            f"{self.name}: the input's height and width (remainders below) must be multiples of the patch size "
            f"{self.patch_size}, else the patch embedding ignores the last rows or columns; resize or crop the images"
        )
        with tf.control_dependencies([tf.debugging.assert_equal(remainder, 0, message=message)]):
            return tf.identity(images)

    def grid_size(self, image_size: int | tuple[int, int]) -> tuple[int, int]:
        height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        return height // self.patch_size, width // self.patch_size

    @classmethod
    def from_config(cls, config: dict):
        # A config saved before `position_interpolation` existed was trained with TF's resize.
        return cls(**{"position_interpolation": "tf", **config})
