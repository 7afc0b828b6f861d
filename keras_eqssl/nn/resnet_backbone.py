"""ResNet backbones (ResNet-18/34/50/...) with ImageNet, CIFAR and SIE stems."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_eqssl.nn.attribute_config import AttributeConfig
from keras_eqssl.nn.backbone import Backbone
from keras_eqssl.nn.fused_batch_norm import FusedBatchNormalization

STEMS = ("imagenet", "cifar", "sie")
BLOCK_TYPES = ("basic", "bottleneck")

# torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv.
_CONV_INIT = {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}  # fmt: skip


def scaled_filters(filters: int, width: float) -> int:
    """`filters * width`, rounded, at least 1: the channel count of a width-scaled ResNet."""
    return max(1, int(round(filters * width)))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ResNetBackbone(AttributeConfig, Backbone):
    """ResNet feature extractor returning the last feature map, its tokens and the pooled vector.

    The residual network of He et al., "Deep Residual Learning for Image Recognition"
    (CVPR 2016), without the classification head, in three layouts picked by `stem`:

    - `"imagenet"`: torchvision's ResNet (v1.5): 7x7/2 conv + BN + ReLU, 3x3/2 max-pool, stride on
      the first 3x3 conv of a basic block and on the 3x3 conv of a bottleneck block, projection
      shortcuts (1x1 conv + BN) only where the shape changes. Paddings are torchvision's
      (symmetric), so ported weights would give the same outputs. Output stride 32.
    - `"cifar"`: the CIFAR stem used by SSL libraries (solo-learn, lightly): one 3x3/1 conv +
      BN + ReLU and no max-pool; the blocks as in `"imagenet"`. Output stride 8.
    - `"sie"`: the ResNet of SIE (Garrido et al., "Self-supervised learning of Split Invariant
      Equivariant representations", ICML 2023; facebookresearch/SIE `src/resnet.py`): 7x7/2 conv
      and 3x3/2 max-pool with SIE's explicit asymmetric pads (2, 3) and (0, 1), the stride on
      the SECOND 3x3 conv of a basic block, a projection shortcut in the first block of EVERY
      stage (even the first), and the last BN gamma of every block initialised to zero
      (`zero_init_residual=True`). At 256x256 input the feature map is 8x8x512 (ResNet-18).

    Hidden convs have no bias; BN uses torch's defaults (momentum 0.1, i.e. Keras 0.9, eps 1e-5).
    The input is any `(B, H, W, 3)` float batch, already normalised.

    Outputs (see `Backbone`): `{"feature_map": (B, h, w, C), "tokens": (B, h*w, C), "pooled": (B, C)}`
    with `C = feature_dim` (512 * width for basic blocks, 2048 * width for bottlenecks).

    Args:
        stackwise_num_blocks: list of int. Blocks per stage, e.g. `[2, 2, 2, 2]` for ResNet-18,
            `[3, 4, 6, 3]` for ResNet-34/50.
        block_type: str. `"basic"` (two 3x3 convs) or `"bottleneck"` (1x1-3x3-1x1, expansion 4).
        stem: str. `"imagenet"`, `"cifar"` or `"sie"` (see above).
        width: float. Multiplier of every channel count; `0.125` gives an 8-channel first stage.
            Use small widths for tests and CPU demos.
        stackwise_num_filters: list of int. Channels of each stage's 3x3 convs before `width`;
            defaults to `[64, 128, 256, 512]` (first 4 stages; must match `stackwise_num_blocks`).
        zero_init_residual: bool or None. Initialise the last BN gamma of each block to zero, so
            that at init every block is its shortcut. `None` means True for `"sie"`, else False.
        image_shape: tuple. Input shape; `(None, None, 3)` accepts any size.
        bn_momentum: float. Keras BatchNormalization momentum.
        bn_epsilon: float. BatchNormalization epsilon.
        synchronized: bool. Synchronise every BN's batch statistics across replicas under
            `tf.distribute` (global-batch BN, as SimCLR on TPUs); no effect on one device.
        fused_bn: bool. Train every unsynchronised BN through TensorFlow's fused kernel
            (`FusedBatchNormalization`): same weights and results up to rounding, 1.2x (float32)
            to 1.5x (bf16) faster with oneDNN on. `False` uses Keras' unfused ops.
        name: str. The model name.

    Examples:

    ```python
    import numpy as np
    from keras_eqssl.nn import ResNetBackbone

    backbone = ResNetBackbone([2, 2, 2, 2], block_type="basic", stem="sie", width=0.125)
    out = backbone(np.zeros((2, 64, 64, 3), "float32"))
    out["feature_map"].shape  # (2, 2, 2, 64)
    out["tokens"].shape       # (2, 4, 64)
    out["pooled"].shape       # (2, 64)
    ```
    """

    config_attributes = (
        "stackwise_num_blocks",
        "block_type",
        "stem",
        "width",
        "stackwise_num_filters",
        "zero_init_residual",
        "image_shape",
        "bn_momentum",
        "bn_epsilon",
        "synchronized",
        "fused_bn",
    )
    config_as_lists = ("stackwise_num_blocks", "stackwise_num_filters", "image_shape")

    def __init__(
        self,
        stackwise_num_blocks: Sequence[int],
        block_type: str = "basic",
        stem: str = "imagenet",
        width: float = 1.0,
        stackwise_num_filters: Sequence[int] | None = None,
        zero_init_residual: bool | None = None,
        image_shape: Sequence[int | None] = (None, None, 3),
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        synchronized: bool = False,
        fused_bn: bool = True,
        name: str = "resnet",
        **kwargs,
    ):
        # --- validate ------------------------------------------------------------------------
        stackwise_num_blocks = [int(n) for n in stackwise_num_blocks]
        if stackwise_num_filters is None:
            stackwise_num_filters = [64 * 2**i for i in range(len(stackwise_num_blocks))]
        stackwise_num_filters = [int(f) for f in stackwise_num_filters]
        if not stackwise_num_blocks or any(n < 1 for n in stackwise_num_blocks):
            raise ValueError(
                f"`stackwise_num_blocks` must be a non-empty list of positive ints. "
                f"Received: stackwise_num_blocks={stackwise_num_blocks}"
            )
        if len(stackwise_num_filters) != len(stackwise_num_blocks):
            raise ValueError(
                "`stackwise_num_filters` and `stackwise_num_blocks` must have the same length. "
                f"Received: stackwise_num_filters={stackwise_num_filters}, stackwise_num_blocks={stackwise_num_blocks}"
            )
        if block_type not in BLOCK_TYPES:
            raise ValueError(f"`block_type` must be one of {BLOCK_TYPES}. Received: block_type={block_type!r}")
        if stem not in STEMS:
            raise ValueError(f"`stem` must be one of {STEMS}. Received: stem={stem!r}")
        if not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"`width` must be a positive float. Received: width={width!r}")
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(
                f"`image_shape` must be (H, W, 3) with H, W ints or None. Received: image_shape={image_shape}"
            )
        if zero_init_residual is None:
            zero_init_residual = stem == "sie"

        # --- graph ---------------------------------------------------------------------------
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, synchronized=bool(synchronized), fused=bool(fused_bn))
        # SIE's blocks pad a strided 3x3 conv by (0, 1, 0, 1): Keras' 'same' wherever SIE runs (even sizes).
        torch_padding = stem != "sie"
        inputs = keras.Input(shape=image_shape, name="images")
        stem_filters = scaled_filters(64, width)
        if stem == "cifar":
            x = _conv(inputs, stem_filters, 3, 1, torch_padding, "stem_conv")
        elif stem == "sie":
            # SIE's F.pad(x, (2, 3, 2, 3)): Keras' 'same' on even sizes, one row/column fewer on odd ones.
            x = keras.layers.ZeroPadding2D(((2, 3), (2, 3)), name="stem_conv_pad")(inputs)
            x = keras.layers.Conv2D(
                stem_filters, 7, 2, use_bias=False, kernel_initializer=_CONV_INIT, name="stem_conv"
            )(x)
        else:
            x = _conv(inputs, stem_filters, 7, 2, torch_padding, "stem_conv")
        x = FusedBatchNormalization(**bn, name="stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        if stem == "imagenet":
            # Zero padding equals torch's -inf padding here: the input is post-ReLU (>= 0).
            x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
            x = keras.layers.MaxPooling2D(3, 2, name="stem_pool")(x)
        elif stem == "sie":
            # SIE pads (0, 1, 0, 1) with -1e4; zeros are the same after the ReLU.
            x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pool_pad")(x)
            x = keras.layers.MaxPooling2D(3, 2, name="stem_pool")(x)

        expansion = 4 if block_type == "bottleneck" else 1
        in_channels = stem_filters
        for stack, (num_blocks, filters) in enumerate(zip(stackwise_num_blocks, stackwise_num_filters)):
            filters = scaled_filters(filters, width)
            for block in range(num_blocks):
                stride = 2 if (block == 0 and stack > 0) else 1
                project = stride != 1 or in_channels != filters * expansion or (stem == "sie" and block == 0)
                x = _residual_block(
                    x,
                    filters,
                    block_type=block_type,
                    stride=stride,
                    project=project,
                    stride_on_second=stem == "sie",
                    torch_padding=torch_padding,
                    zero_init=zero_init_residual,
                    bn=bn,
                    name=f"stack{stack}_block{block}",
                )
                in_channels = filters * expansion

        feature_map = x
        tokens = keras.layers.Reshape((-1, in_channels), name="tokens")(feature_map)
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(feature_map)
        super().__init__(
            inputs=inputs, outputs={"feature_map": feature_map, "tokens": tokens, "pooled": pooled}, name=name, **kwargs
        )

        # --- config --------------------------------------------------------------------------
        self.stackwise_num_blocks = stackwise_num_blocks
        self.block_type = block_type
        self.stem = stem
        self.width = float(width)
        self.stackwise_num_filters = stackwise_num_filters
        self.zero_init_residual = bool(zero_init_residual)
        self.image_shape = image_shape
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.synchronized = bool(synchronized)
        self.fused_bn = bool(fused_bn)
        self._feature_dim = in_channels
        self._feature_stride = (1 if stem == "cifar" else 4) * 2 ** (len(stackwise_num_blocks) - 1)


def _conv(x, filters: int, kernel_size: int, stride: int, torch_padding: bool, name: str):
    """A bias-free conv; strided convs pad like torch (symmetric) when `torch_padding`, else 'same'."""
    if stride > 1 and kernel_size > 1 and torch_padding:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return keras.layers.Conv2D(
        filters, kernel_size, stride, padding=padding, use_bias=False, kernel_initializer=_CONV_INIT, name=name
    )(x)


def _residual_block(
    x,
    filters: int,
    block_type: str,
    stride: int,
    project: bool,
    stride_on_second: bool,
    torch_padding: bool,
    zero_init: bool,
    bn: dict,
    name: str,
):
    """One basic or bottleneck block; layers are named `{name}_conv1`, `_bn1`, ..., `_shortcut_conv`, `_add`, `_out`."""
    last_gamma = "zeros" if zero_init else "ones"
    shortcut = x
    if project:
        shortcut = keras.layers.Conv2D(
            filters * (4 if block_type == "bottleneck" else 1),
            1,
            stride,
            use_bias=False,
            kernel_initializer=_CONV_INIT,
            name=f"{name}_shortcut_conv",
        )(x)
        shortcut = FusedBatchNormalization(**bn, name=f"{name}_shortcut_bn")(shortcut)

    if block_type == "basic":
        first, second = (1, stride) if stride_on_second else (stride, 1)
        y = _conv(x, filters, 3, first, torch_padding, f"{name}_conv1")
        y = FusedBatchNormalization(**bn, name=f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(y, filters, 3, second, torch_padding, f"{name}_conv2")
        y = FusedBatchNormalization(**bn, gamma_initializer=last_gamma, name=f"{name}_bn2")(y)
    else:  # bottleneck (v1.5): the stride sits on the 3x3 conv
        y = _conv(x, filters, 1, 1, torch_padding, f"{name}_conv1")
        y = FusedBatchNormalization(**bn, name=f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(y, filters, 3, stride, torch_padding, f"{name}_conv2")
        y = FusedBatchNormalization(**bn, name=f"{name}_bn2")(y)
        y = keras.layers.ReLU(name=f"{name}_relu2")(y)
        y = _conv(y, filters * 4, 1, 1, torch_padding, f"{name}_conv3")
        y = FusedBatchNormalization(**bn, gamma_initializer=last_gamma, name=f"{name}_bn3")(y)

    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)
