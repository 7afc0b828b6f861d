"""keras-hub image backbones (ResNet, ViT, ...) behind our backbone contract, by class or preset name."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

import keras

from keras_eqssl.nn.backbone import Backbone

PREFIX = "keras_hub:"  # config.model.backbone = "keras_hub:<class, preset name or preset directory>"
POOLINGS = ("auto", "cls", "mean")
_PROBE_SIDE = 224  # the input side used to measure a feature-map backbone's stride when its input size is free


def _keras_hub():
    """The `keras_hub` module, or an ImportError saying how to install it."""
    try:
        import keras_hub
    except ImportError as err:  # pragma: no cover - the `hub` extra is not installed
        raise ImportError("keras-hub backbones need the keras-hub package: pip install 'keras_eqssl[hub]'") from err
    return keras_hub


def _patch_size(hub_backbone) -> tuple[int, int]:
    """The `(height, width)` patch size of a token backbone (its `patch_size` attribute)."""
    patch = getattr(hub_backbone, "patch_size", None)
    if patch is None:
        raise ValueError(
            f"{type(hub_backbone).__name__} returns a token sequence but has no `patch_size` attribute, "
            "so its tokens cannot be laid on a patch grid"
        )
    return (int(patch), int(patch)) if isinstance(patch, int) else (int(patch[0]), int(patch[1]))


@keras.saving.register_keras_serializable(package="keras_eqssl")
class KerasHubBackbone(Backbone):
    """A `keras_hub.models.Backbone` for images, returning our backbone's outputs.

    Wraps a keras-hub image backbone that maps one `(B, H, W, 3)` image batch to either

    - a feature map `(B, h, w, C)` (`ResNetBackbone` and the other CNNs): `"feature_map"` is it,
      `"tokens"` its positions in row-major order and `"pooled"` their global average, as our
      `ResNetBackbone`; or
    - a token sequence `(B, P + h * w, C)` (`ViTBackbone`): the last `h * w` tokens are the patch
      tokens (`h = H // patch_size`), laid back on their grid for `"feature_map"`; the `P` leading
      tokens (ViT's class token, registers) are dropped from `"tokens"`. `"pooled"` is the first
      leading token (`pooling="cls"`, as our `VisionTransformer`) or the mean of the patch tokens
      (`pooling="mean"`); `"auto"` is `"cls"` when there is a leading token, else `"mean"`.

    Input normalisation: the adapter adds none, and keras-hub backbones have none either (keras-hub
    normalises in its `ImageConverter`, which is not used). Our models normalise the images with
    `config.model.normalization`'s mean and std before the backbone; a pretrained preset expects
    its own converter's normalisation, so pick the matching one (ImageNet's for keras-hub's ResNet
    presets).

    The wrapped backbone is a layer of this model: training, `.keras` save/load (its config is
    saved with `keras.saving.serialize_keras_object`), EMA copies and export see its weights.

    Args:
        hub_backbone: a `keras_hub.models.Backbone` with one image input, or its serialised config.
        pooling: str. `"auto"`, `"cls"` or `"mean"`: what `"pooled"` is for a token backbone.
        name: str. The model name.

    Example:
    >>> import keras_hub, numpy as np
    >>> hub = keras_hub.models.ResNetBackbone(
    ...     input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 8],
    ...     stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block")
    >>> backbone = KerasHubBackbone(hub)
    >>> out = backbone(np.zeros((2, 32, 32, 3), "float32"))
    >>> tuple(out["feature_map"].shape), tuple(out["tokens"].shape), tuple(out["pooled"].shape)
    ((2, 4, 4, 8), (2, 16, 8), (2, 8))
    >>> backbone.feature_dim, backbone.feature_stride
    (8, 8)
    """

    def __init__(self, hub_backbone, pooling: str = "auto", name: str = "keras_hub", **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling!r}")
        keras_hub = _keras_hub()
        if isinstance(hub_backbone, Mapping):
            hub_backbone = keras.saving.deserialize_keras_object(dict(hub_backbone))
        if not isinstance(hub_backbone, keras_hub.models.Backbone) or len(hub_backbone.inputs) != 1:
            raise ValueError(
                "`hub_backbone` must be a keras_hub.models.Backbone with one image input. "
                f"Received: {type(hub_backbone).__name__}"
            )
        image_shape = tuple(hub_backbone.inputs[0].shape[1:])
        inputs = keras.Input(shape=image_shape, name="images")
        x = hub_backbone(inputs)
        if len(x.shape) == 4:
            outputs, stride, spatial = self._feature_map_outputs(x, hub_backbone, image_shape)
        elif len(x.shape) == 3:
            outputs, stride, spatial = self._token_outputs(x, hub_backbone, image_shape, pooling)
        else:
            raise ValueError(
                f"{type(hub_backbone).__name__} returns shape {tuple(x.shape)}: expected a feature map "
                "(B, h, w, C) or tokens (B, T, C)"
            )
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.hub_backbone = hub_backbone
        self.pooling = pooling
        self.image_shape = image_shape
        self._feature_dim = int(x.shape[-1])
        self._feature_stride = stride
        self._has_spatial_map = spatial

    @staticmethod
    def _feature_map_outputs(feature_map, hub_backbone, image_shape):
        channels = int(feature_map.shape[-1])
        tokens = keras.layers.Reshape((-1, channels), name="tokens")(feature_map)
        pooled = keras.layers.GlobalAveragePooling2D(name="pooled")(feature_map)
        side = image_shape[0] or _PROBE_SIDE
        height = hub_backbone.compute_output_shape((1, side, image_shape[1] or _PROBE_SIDE, 3))[1]
        stride = max(1, side // int(height))
        spatial = feature_map.shape[1] is None or feature_map.shape[1] * feature_map.shape[2] > 1
        return {"feature_map": feature_map, "tokens": tokens, "pooled": pooled}, stride, spatial

    @staticmethod
    def _token_outputs(sequence, hub_backbone, image_shape, pooling):
        patch = _patch_size(hub_backbone)
        if image_shape[0] is None or image_shape[1] is None:
            raise ValueError(f"{type(hub_backbone).__name__} must have a fixed `image_shape` to wrap its tokens")
        grid = (image_shape[0] // patch[0], image_shape[1] // patch[1])
        leading = int(sequence.shape[1]) - grid[0] * grid[1]
        if leading < 0:
            raise ValueError(f"{type(hub_backbone).__name__} returns fewer tokens than its {grid} patch grid")
        tokens = sequence[:, leading:]
        feature_map = keras.layers.Reshape((*grid, int(sequence.shape[-1])), name="feature_map")(tokens)
        if pooling == "cls" and not leading:
            raise ValueError(f"pooling='cls': {type(hub_backbone).__name__} has no class token; use 'mean'")
        if pooling != "mean" and leading:
            pooled = sequence[:, 0]
        else:
            pooled = keras.layers.GlobalAveragePooling1D(name="pooled")(tokens)
        outputs = {"feature_map": feature_map, "tokens": tokens, "pooled": pooled}
        return outputs, patch[0], grid[0] * grid[1] > 1

    @property
    def patch_size(self) -> int | None:
        """The patch side of a token backbone (ViT), None for a feature-map backbone."""
        patch = getattr(self.hub_backbone, "patch_size", None)
        return None if patch is None else _patch_size(self.hub_backbone)[0]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "hub_backbone": keras.saving.serialize_keras_object(self.hub_backbone),
            "pooling": self.pooling,
        }


def is_keras_hub_name(name: str) -> bool:
    """Whether a `config.model.backbone` names a keras-hub backbone (`"keras_hub:..."`)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def hub_backbone_class(spec: str):
    """The `keras_hub.models` Backbone class named `spec` (e.g. `"ResNetBackbone"`), or None."""
    cls = getattr(_keras_hub().models, spec, None)
    return cls if inspect.isclass(cls) and issubclass(cls, _keras_hub().models.Backbone) else None


def cached_preset_path(preset: str) -> str | None:
    """A local directory holding `preset`: itself if it is one, else a built-in preset's copy in the
    kagglehub cache (`KAGGLEHUB_CACHE`, default `~/.cache/kagglehub`); None when there is none.

    Nothing is downloaded: a built-in preset must have been loaded once before (online), e.g. with
    `keras_hub.models.Backbone.from_preset("resnet_18_imagenet")`.
    """
    if os.path.isdir(os.path.expanduser(preset)):
        return os.path.expanduser(preset)
    _keras_hub()
    from keras_hub.src.utils.preset_utils import BUILTIN_PRESETS

    handle = BUILTIN_PRESETS.get(preset, {}).get("kaggle_handle", "")
    if not handle.startswith("kaggle://"):
        return None
    from kagglehub.cache import get_cached_path
    from kagglehub.handle import parse_model_handle

    path = get_cached_path(parse_model_handle(handle.removeprefix("kaggle://")))
    return path if os.path.isfile(os.path.join(path, "config.json")) else None


def _unknown_arguments(cls, arguments: Mapping) -> list[str]:
    return sorted(set(arguments) - set(inspect.signature(cls.__init__).parameters) - {"name", "dtype"})


def _needs_image_shape(cls, arguments: Mapping) -> bool:
    parameter = inspect.signature(cls.__init__).parameters.get("image_shape")
    return parameter is not None and parameter.default is inspect.Parameter.empty and "image_shape" not in arguments


def fixed_input_size(spec: str, arguments: Mapping | None, image_size: int) -> tuple[int, int] | None:
    """The one `(H, W)` that the class `spec` built from `arguments` takes (its `image_shape`, or
    `image_size` for a class that requires one and was given none), or None when any size goes
    (or `spec` is a preset)."""
    arguments = arguments or {}
    cls = hub_backbone_class(spec)
    if cls is None:
        return None
    if _needs_image_shape(cls, arguments):
        return int(image_size), int(image_size)
    height, width = tuple(arguments.get("image_shape") or (None, None))[:2]
    return None if height is None or width is None else (int(height), int(width))


def keras_hub_problem(spec: str, arguments: Mapping | None = None) -> str | None:
    """Why `hub_backbone_from_spec(spec, arguments)` cannot build, or None when it can (nothing is built).

    Example:
    >>> keras_hub_problem("ResNetBackbone", {"stackwise_num_filter": [64]})
    "keras_hub.models.ResNetBackbone takes no argument(s) ['stackwise_num_filter']"
    """
    cls = hub_backbone_class(spec)
    if cls is not None:
        unknown = _unknown_arguments(cls, arguments or {})
        return f"keras_hub.models.{spec} takes no argument(s) {unknown}" if unknown else None
    if cached_preset_path(spec) is None:
        return (
            f"{spec!r} is neither a keras_hub.models Backbone class nor a preset directory or a built-in "
            "preset in the local keras-hub cache (nothing is downloaded: load the preset once online with "
            "keras_hub.models.Backbone.from_preset, or give its directory)"
        )
    return None


def hub_backbone_from_spec(spec: str, arguments: Mapping | None = None, image_size: int | None = None):
    """A keras-hub backbone from a class name and its constructor arguments, or from a preset.

    Args:
        spec: a `keras_hub.models` Backbone class (`"ResNetBackbone"`, `"ViTBackbone"`), a built-in
            preset name already in the local cache (`"resnet_18_imagenet"`), or a preset directory.
        arguments: the class's constructor arguments; for a preset, `from_preset`'s keyword
            arguments (e.g. `load_weights=False`).
        image_size: the side of the `image_shape` given to a class that requires one (`ViTBackbone`)
            when `arguments` has none.

    Raises:
        ValueError: an unknown class or preset, or arguments the class does not take.
    """
    arguments = dict(arguments or {})
    problem = keras_hub_problem(spec, arguments)
    if problem:
        raise ValueError(problem)
    cls = hub_backbone_class(spec)
    if cls is None:
        return _keras_hub().models.Backbone.from_preset(cached_preset_path(spec), **arguments)
    if image_size is not None and _needs_image_shape(cls, arguments):
        arguments["image_shape"] = (int(image_size), int(image_size), 3)
    return cls(**arguments)


def keras_hub_backbone_from_name(
    name: str, arguments: Mapping | None = None, image_size: int | None = None, **kwargs
) -> KerasHubBackbone:
    """`KerasHubBackbone` of `name` = `"keras_hub:<class | preset | directory>"` (see `hub_backbone_from_spec`)."""
    spec = name.removeprefix(PREFIX)
    hub_backbone = hub_backbone_from_spec(spec, arguments, image_size)
    return KerasHubBackbone(hub_backbone, name=os.path.basename(os.path.normpath(spec)) or "keras_hub", **kwargs)
