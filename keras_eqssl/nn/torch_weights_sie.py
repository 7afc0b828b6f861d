"""Load the ResNet of SIE's official code (facebookresearch/SIE `src/resnet.py`) into `ResNetBackbone(stem="sie")`.

SIE's checkpoints name their tensors as torchvision does (`conv1`, `bn1`, `layer1.0.conv1`,
`layer1.0.downsample.0`, ...), but the network behind the names differs: the stride of a basic
block sits on its second 3x3 conv, and the first block of every stage has a projection shortcut
(`downsample`), the first stage's included. `load_resnet_weights` reads torchvision's layout and
refuses `stem="sie"`; this loader checks SIE's layout (a `downsample` in every first block, none
elsewhere) and fills the SIE backbone. Read the checkpoint with `read_state_dict` (no torch needed):
`model.pth` holds the whole DDP model under `"model"` (names `module.backbone.*`), `final_weights.pth`
the backbone alone (no prefix).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from keras_eqssl.nn.torch_weights import LoadReport, TorchWeightLoader


def load_sie_resnet_weights(backbone, state_dict: Mapping[str, np.ndarray], prefix: str = "") -> LoadReport:
    """Loads SIE's ResNet weights into a `ResNetBackbone(stem="sie")`, BatchNorm statistics included.

    torch Conv2d `(O, I, kh, kw)` becomes Keras `(kh, kw, I, O)`; BatchNorm `weight`, `bias`,
    `running_mean`, `running_var` become `gamma`, `beta`, `moving_mean`, `moving_variance`.
    Every backbone weight is loaded (or a `KeyError` / `ValueError` names the torch key); tensors of
    the state dict outside the backbone (projectors, the online evaluator) are listed as `unused`
    when `prefix` does not exclude them.

    Args:
        backbone: a built `ResNetBackbone` with `stem="sie"` (any depth, basic or bottleneck blocks,
            the widths of the checkpoint).
        state_dict: name -> array, e.g. `state_dict_from(read_state_dict("model.pth"), key="model")`.
        prefix: the backbone's prefix in `state_dict`: `"module.backbone."` in SIE's `model.pth`,
            `""` in its `final_weights.pth`, `"backbone."` in a non-DDP `state_dict()`.

    Returns:
        A `LoadReport`.

    Examples:

    ```python
    from keras_eqssl.nn import ResNetBackbone, read_state_dict, state_dict_from
    from keras_eqssl.nn.torch_weights_sie import load_sie_resnet_weights

    backbone = ResNetBackbone([2, 2, 2, 2], stem="sie")
    weights = state_dict_from(read_state_dict("EXP_ROOT/SIE/model.pth"), key="model")
    print(load_sie_resnet_weights(backbone, weights, prefix="module.backbone."))
    ```
    """
    if getattr(backbone, "stem", None) != "sie":
        raise ValueError(
            "load_sie_resnet_weights fills a ResNetBackbone(stem='sie'); received "
            f"stem={getattr(backbone, 'stem', None)!r} (torchvision's layout: load_resnet_weights)"
        )
    loader = TorchWeightLoader(state_dict, prefix)
    loader.conv2d(backbone.get_layer("stem_conv"), "conv1")
    loader.batch_norm(backbone.get_layer("stem_bn"), "bn1")
    convs = 3 if backbone.block_type == "bottleneck" else 2
    for stack, blocks in enumerate(backbone.stackwise_num_blocks):
        for block in range(blocks):
            ours, theirs = f"stack{stack}_block{block}", f"layer{stack + 1}.{block}"
            for i in range(1, convs + 1):
                loader.conv2d(backbone.get_layer(f"{ours}_conv{i}"), f"{theirs}.conv{i}")
                loader.batch_norm(backbone.get_layer(f"{ours}_bn{i}"), f"{theirs}.bn{i}")
            has_shortcut = loader.has(f"{theirs}.downsample.0.weight")
            if has_shortcut != (block == 0):
                raise ValueError(
                    f"{prefix}{theirs}: SIE's ResNet has a projection shortcut (downsample) in the first block of "
                    f"every stage and nowhere else; this state dict {'has' if has_shortcut else 'lacks'} one here "
                    "(a torchvision checkpoint? use load_resnet_weights with stem='imagenet')"
                )
            if has_shortcut:
                loader.conv2d(backbone.get_layer(f"{ours}_shortcut_conv"), f"{theirs}.downsample.0")
                loader.batch_norm(backbone.get_layer(f"{ours}_shortcut_bn"), f"{theirs}.downsample.1")
    return loader.finish(backbone)
