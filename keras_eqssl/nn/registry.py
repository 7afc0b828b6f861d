"""Backbones by name: `backbone_from_name("resnet18", stem="sie", width=0.25)`."""

from __future__ import annotations

from keras_eqssl.nn.backbone import Backbone
from keras_eqssl.nn.resnet_backbone import ResNetBackbone
from keras_eqssl.nn.vit_backbone import VIT_PRESETS, VisionTransformer

# name -> (class, preset kwargs); keyword arguments given to `backbone_from_name` override them.
BACKBONES: dict[str, tuple[type[Backbone], dict]] = {
    "resnet18": (ResNetBackbone, dict(stackwise_num_blocks=[2, 2, 2, 2], block_type="basic")),
    "resnet34": (ResNetBackbone, dict(stackwise_num_blocks=[3, 4, 6, 3], block_type="basic")),
    "resnet50": (ResNetBackbone, dict(stackwise_num_blocks=[3, 4, 6, 3], block_type="bottleneck")),
    **{name: (VisionTransformer, preset) for name, preset in VIT_PRESETS.items()},
}


def available_backbones() -> list[str]:
    """The names `backbone_from_name` accepts."""
    return sorted(BACKBONES)


def backbone_from_name(name: str, **kwargs) -> Backbone:
    """Builds a backbone from its name and keyword overrides of its preset.

    Args:
        name: str. One of `available_backbones()`: `"resnet18"`, `"resnet34"`, `"resnet50"`
            (`ResNetBackbone`; pass `stem=` and `width=`), `"vit_s16"`, `"vit_b16"`, `"vit_tiny"`
            (`VisionTransformer`; pass e.g. `pooling=`).
        **kwargs: arguments of the backbone class, overriding the preset.

    Returns:
        A `Backbone` whose call returns `{"feature_map", "tokens", "pooled"}`.

    Examples:

    ```python
    backbone = backbone_from_name("resnet18", stem="sie", width=0.25)
    backbone.feature_dim  # 128
    ```
    """
    if name not in BACKBONES:
        raise ValueError(f"Unknown backbone. Expected one of {available_backbones()}. Received: name={name!r}")
    cls, preset = BACKBONES[name]
    return cls(**{"name": name, **preset, **kwargs})
