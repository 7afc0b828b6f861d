"""Load PyTorch weights (a state dict of NumPy arrays) into keras_eqssl backbones and heads.

The names are those of the authors' code: torchvision's `resnet18`/`resnet50` (and SIE's and the
CIFAR variants, which name their tensors the same way) for `ResNetBackbone`, timm's / DINO's `VisionTransformer` for
`VisionTransformer`, and `nn.Sequential` Linear/BatchNorm stacks for `MLP`. Every assignment checks
the shape and names the torch key when it does not fit; what was loaded, left unused or left
missing comes back in a `LoadReport`. Read the state dict with `read_state_dict` (no torch needed).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import keras
import numpy as np


@dataclasses.dataclass
class LoadReport:
    """What a load did: torch names `loaded`, torch names `unused`, Keras weight paths `missing`."""

    loaded: list[str] = dataclasses.field(default_factory=list)
    unused: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        return f"loaded {len(self.loaded)} tensors; unused: {self.unused or 'none'}; missing: {self.missing or 'none'}"


class TorchWeightLoader:
    """Assigns torch tensors to Keras variables, checking shapes and recording what was used."""

    def __init__(self, state_dict: Mapping[str, np.ndarray], prefix: str = ""):
        self.state_dict = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        self.prefix = prefix
        self.report = LoadReport()

    def has(self, key: str) -> bool:
        return key in self.state_dict

    def take(self, key: str) -> np.ndarray:
        if key not in self.state_dict:
            raise KeyError(f"The state dict has no {self.prefix}{key!r} (names seen: {_sample(self.state_dict)})")
        self.report.loaded.append(self.prefix + key)
        return np.asarray(self.state_dict[key], dtype=np.float32)

    def assign(self, variable, value: np.ndarray, key: str) -> None:
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"{self.prefix}{key}: shape {value.shape} (after layout change) does not fit "
                f"{variable.path} of shape {tuple(variable.shape)}"
            )
        variable.assign(value.astype(variable.dtype))

    def conv2d(self, layer, key: str) -> None:
        """torch Conv2d `(O, I, kh, kw)` -> Keras `(kh, kw, I, O)`."""
        self.assign(layer.kernel, self.take(f"{key}.weight").transpose(2, 3, 1, 0), f"{key}.weight")
        if layer.use_bias:
            self.assign(layer.bias, self.take(f"{key}.bias"), f"{key}.bias")

    def dense(self, layer, key: str) -> None:
        """torch Linear `(out, in)` -> Keras `(in, out)`."""
        self.assign(layer.kernel, self.take(f"{key}.weight").T, f"{key}.weight")
        if layer.use_bias:
            self.assign(layer.bias, self.take(f"{key}.bias"), f"{key}.bias")

    def batch_norm(self, layer, key: str) -> None:
        for ours, theirs in (
            ("gamma", "weight"),
            ("beta", "bias"),
            ("moving_mean", "running_mean"),
            ("moving_variance", "running_var"),
        ):
            if getattr(layer, ours, None) is not None:
                self.assign(getattr(layer, ours), self.take(f"{key}.{theirs}"), f"{key}.{theirs}")
        if self.has(f"{key}.num_batches_tracked"):
            self.report.loaded.append(f"{self.prefix}{key}.num_batches_tracked")

    def layer_norm(self, layer, key: str) -> None:
        self.assign(layer.gamma, self.take(f"{key}.weight"), f"{key}.weight")
        self.assign(layer.beta, self.take(f"{key}.bias"), f"{key}.bias")

    def finish(self, model) -> LoadReport:
        used = set(self.report.loaded)
        self.report.unused = sorted(self.prefix + k for k in self.state_dict if self.prefix + k not in used)
        return self.report


def _sample(state_dict: Mapping[str, np.ndarray], n: int = 6) -> str:
    names = list(state_dict)
    return ", ".join(names[:n]) + (f", ... ({len(names)} in all)" if len(names) > n else "")


def load_resnet_weights(backbone, state_dict: Mapping[str, np.ndarray], prefix: str = "") -> LoadReport:
    """Loads torchvision-named ResNet weights (`conv1`, `bn1`, `layer1.0.conv1`, ...) into a `ResNetBackbone`.

    One naming serves the three stems: torchvision's `resnet18`/`resnet50` for `stem="imagenet"`,
    the CIFAR variants (a 3x3 `conv1`, as solo-learn and the CIFAR code of E-SSL and AugSelf) for
    `stem="cifar"`, and SIE's `src/resnet.py` for `stem="sie"`. The layouts behind the names differ
    where a block has a projection shortcut (`downsample`): torchvision only where the shape
    changes, SIE in the first block of every stage. A state dict whose shortcuts are not where the
    backbone's are is refused, naming the block, so a checkpoint of one layout never loads into
    the other. The classifier `fc.*` is left unused. BatchNorm running statistics are loaded too,
    so inference outputs match torch's `eval()` outputs.

    Args:
        backbone: a built `ResNetBackbone`.
        state_dict: name -> array, e.g. from `state_dict_from(read_state_dict(path))`.
        prefix: the prefix of the backbone's names in `state_dict` (`"backbone."`, `"module.backbone."`).

    Returns:
        A `LoadReport`; every backbone weight is loaded or a `KeyError`/`ValueError` names the key.

    Examples:

    ```python
    from keras_eqssl.nn import ResNetBackbone, load_resnet_weights, read_state_dict, state_dict_from

    backbone = ResNetBackbone([2, 2, 2, 2], stem="sie")
    weights = state_dict_from(read_state_dict("SIE/model.pth"), key="model")  # DDP names: module.backbone.*
    print(load_resnet_weights(backbone, weights, prefix="backbone."))
    ```
    """
    loader = TorchWeightLoader(state_dict, prefix)
    loader.conv2d(backbone.get_layer("stem_conv"), "conv1")
    loader.batch_norm(backbone.get_layer("stem_bn"), "bn1")
    names = {layer.name for layer in backbone.layers}
    convs = 3 if backbone.block_type == "bottleneck" else 2
    for stack, blocks in enumerate(backbone.stackwise_num_blocks):
        for block in range(blocks):
            ours, theirs = f"stack{stack}_block{block}", f"layer{stack + 1}.{block}"
            for i in range(1, convs + 1):
                loader.conv2d(backbone.get_layer(f"{ours}_conv{i}"), f"{theirs}.conv{i}")
                loader.batch_norm(backbone.get_layer(f"{ours}_bn{i}"), f"{theirs}.bn{i}")
            shortcut = f"{ours}_shortcut_conv" in names
            if shortcut != loader.has(f"{theirs}.downsample.0.weight"):
                raise ValueError(
                    f"{prefix}{theirs}: the state dict {'lacks' if shortcut else 'has'} a projection shortcut "
                    f"(downsample) where ResNetBackbone(stem={backbone.stem!r}) {'has' if shortcut else 'has none'}: "
                    "a checkpoint of another layout (SIE's ResNet has one in the first block of every stage, "
                    "torchvision's only where the shape changes)"
                )
            if shortcut:
                loader.conv2d(backbone.get_layer(f"{ours}_shortcut_conv"), f"{theirs}.downsample.0")
                loader.batch_norm(backbone.get_layer(f"{ours}_shortcut_bn"), f"{theirs}.downsample.1")
    return loader.finish(backbone)


def load_vit_weights(backbone, state_dict: Mapping[str, np.ndarray], prefix: str = "") -> LoadReport:
    """Loads timm / DINO ViT weights (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.*`, `norm`).

    The fused `attn.qkv` projection is split into Keras' query, key and value projections per
    head. The position table must be stored for the same patch grid as the backbone's
    `image_size // patch_size` (plus the CLS entry). A classifier `head.*` is left unused.

    Args:
        backbone: a built `VisionTransformer`.
        state_dict: name -> array.
        prefix: the prefix of the ViT's names in `state_dict` (`"backbone."`, `"student.backbone."`).

    Returns:
        A `LoadReport`.

    Examples:

    ```python
    from keras_eqssl.nn import VIT_PRESETS, VisionTransformer, load_vit_weights

    vit = VisionTransformer(**VIT_PRESETS["vit_s16"])
    load_vit_weights(vit, teacher_weights, prefix="backbone.")
    ```
    """
    loader = TorchWeightLoader(state_dict, prefix)
    loader.conv2d(backbone.get_layer("patch_embedding"), "patch_embed.proj")
    embedding = backbone.get_layer("class_token_position_embedding")
    loader.assign(embedding.class_token, loader.take("cls_token"), "cls_token")
    loader.assign(embedding.position_embedding, loader.take("pos_embed"), "pos_embed")
    dim, heads = backbone.hidden_dim, backbone.num_heads
    for i in range(backbone.depth):
        block, key = backbone.get_layer(f"block{i}"), f"blocks.{i}"
        loader.layer_norm(block.norm1, f"{key}.norm1")
        loader.layer_norm(block.norm2, f"{key}.norm2")
        qkv_w, qkv_b = loader.take(f"{key}.attn.qkv.weight"), loader.take(f"{key}.attn.qkv.bias")
        attention = block.attention
        for j, dense in enumerate((attention._query_dense, attention._key_dense, attention._value_dense)):
            w = qkv_w[j * dim : (j + 1) * dim].T.reshape(dim, heads, dim // heads)
            loader.assign(dense.kernel, w, f"{key}.attn.qkv.weight")
            loader.assign(
                dense.bias, qkv_b[j * dim : (j + 1) * dim].reshape(heads, dim // heads), f"{key}.attn.qkv.bias"
            )
        proj_w = loader.take(f"{key}.attn.proj.weight").T.reshape(heads, dim // heads, dim)
        loader.assign(attention._output_dense.kernel, proj_w, f"{key}.attn.proj.weight")
        loader.assign(attention._output_dense.bias, loader.take(f"{key}.attn.proj.bias"), f"{key}.attn.proj.bias")
        loader.dense(block.mlp_in, f"{key}.mlp.fc1")
        loader.dense(block.mlp_out, f"{key}.mlp.fc2")
    loader.layer_norm(backbone.get_layer("norm"), "norm")
    return loader.finish(backbone)


def load_mlp_weights(mlp, state_dict: Mapping[str, np.ndarray], prefix: str = "") -> LoadReport:
    """Loads an `nn.Sequential` of Linear / BatchNorm1d / LayerNorm (/ ReLU) layers into an `MLP`.

    The Sequential's numbered children are walked in order: each 2-D `N.weight` is the next Dense,
    each 1-D `N.weight` with `N.running_mean` the next BatchNorm, without it the next LayerNorm.
    Activations hold no weights and are skipped. The counts must match the `MLP`'s layers.

    Args:
        mlp: a built `MLP`.
        state_dict: name -> array.
        prefix: the Sequential's prefix, e.g. `"projector."` (names below it are `0.weight`, `1.running_mean`, ...).

    Returns:
        A `LoadReport`.
    """
    loader = TorchWeightLoader(state_dict, prefix)
    indices = sorted({int(m.group(1)) for k in loader.state_dict if (m := re.match(r"(\d+)\.", k))})
    dense_keys, norm_keys = [], []
    for i in indices:
        weight = loader.state_dict.get(f"{i}.weight")
        if weight is None:
            continue
        (dense_keys if weight.ndim == 2 else norm_keys).append(str(i))
    if len(dense_keys) != len(mlp.dense_layers) or len(norm_keys) != len(mlp.norm_layers):
        raise ValueError(
            f"{prefix or 'the state dict'} holds {len(dense_keys)} Linear and {len(norm_keys)} norm layers; "
            f"the MLP {mlp.name} has {len(mlp.dense_layers)} Dense and {len(mlp.norm_layers)} norm layers"
        )
    for layer, key in zip(mlp.dense_layers, dense_keys):
        loader.dense(layer, key)
    for layer, key in zip(mlp.norm_layers, norm_keys):
        if isinstance(layer, keras.layers.BatchNormalization):
            loader.batch_norm(layer, key)
        else:
            loader.layer_norm(layer, key)
    return loader.finish(mlp)


def load_backbone_weights(backbone, state_dict: Mapping[str, np.ndarray], prefix: str | None = None) -> LoadReport:
    """Loads torch weights into a backbone of either kind: `load_resnet_weights` or `load_vit_weights`.

    Args:
        backbone: a `ResNetBackbone` (any stem) or a `VisionTransformer`.
        state_dict: name -> array.
        prefix: the backbone's prefix in `state_dict`. `None` finds it: the shortest prefix ending
            in "." under which the backbone's first weight (`conv1.weight` / `patch_embed.proj.weight`) is.

    Raises:
        KeyError: no prefix holds the backbone's first weight (the message lists some names).
        TypeError: the backbone is of another kind.
    """
    from keras_eqssl.nn.resnet_backbone import ResNetBackbone
    from keras_eqssl.nn.vit_backbone import VisionTransformer

    if isinstance(backbone, ResNetBackbone):
        load, first = load_resnet_weights, "conv1.weight"
    elif isinstance(backbone, VisionTransformer):
        load, first = load_vit_weights, "patch_embed.proj.weight"
    else:
        raise TypeError(f"No torch weight mapping for a {type(backbone).__name__}; use TorchWeightLoader")
    if prefix is None:
        found = sorted((k[: -len(first)] for k in state_dict if k.endswith(first)), key=len)
        if not found or (found[0] and not found[0].endswith(".")):
            raise KeyError(f"No '{first}' (under any prefix) in the state dict: {_sample(state_dict)}")
        prefix = found[0]
    return load(backbone, state_dict, prefix)
