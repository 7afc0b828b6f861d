"""From a config (`keras_eqssl.default_config`) to a model (a kind of `MODEL_KINDS`) and its optimizer."""

from __future__ import annotations

import keras

from keras_eqssl.errors import ConfigError
from keras_eqssl.methods.coupled_sgd import CoupledSGD
from keras_eqssl.methods.scheduled_adamw import ScheduledAdamW
from keras_eqssl.methods.ssl_model import IMAGENET_MEAN, IMAGENET_STD, MODEL_KINDS, SSLModel
from keras_eqssl.methods.torch_adam import TorchAdam
from keras_eqssl.nn.keras_hub_backbone import (
    PREFIX,
    fixed_input_size,
    is_keras_hub_name,
    keras_hub_backbone_from_name,
    keras_hub_problem,
)
from keras_eqssl.nn.registry import backbone_from_name

# STL10's per-channel statistics, as the official STL code normalises its inputs (main.py).
STL10_MEAN, STL10_STD = (0.43, 0.42, 0.39), (0.27, 0.26, 0.27)


def normalization_from_config(config) -> tuple[tuple, tuple]:
    """`(mean, std)` of `config.model.normalization`: "auto" = the renders' statistics on threedie, else ImageNet's."""
    name = config.model.get("normalization", "auto")
    if name == "stl10":
        return STL10_MEAN, STL10_STD
    if name == "auto" and config.data.source == "threedie":
        from keras_eqssl.data.threedie import THREEDIE_MEAN, THREEDIE_STD

        return THREEDIE_MEAN, THREEDIE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def _switch(value: str) -> bool | None:
    """A config switch "auto" | "on" | "off" -> None (the component's default) | True | False."""
    return {"auto": None, "on": True, "off": False}[value]


def model_from_config(config, param_specs=None, synchronized: bool = False) -> SSLModel:
    """The model of `config.model` (`method`: a kind of `MODEL_KINDS`, e.g. `PairModel`'s "pair") for views
    of `config.augment.size` px.

    A model the config cannot build (a split wider than the backbone, a view size the ViT's
    patch grid or the decoder cannot use) is a `ConfigError` naming the fields involved.

    Args:
        config: a config with the `default_config` schema.
        param_specs: the policy's `ParamSpec`s of every view (see `train_batches`), to check
            parameter-prediction targets at construction; None when no policy runs.
        synchronized: synchronised BatchNorm everywhere (several replicas and `model.sync_bn`).
    """
    try:
        return _model_from_config(config, param_specs, synchronized)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        m = config.model
        raise ConfigError(
            f"config.model (backbone={m.backbone!r}, width={m.width}, split={tuple(m.split)}) with "
            f"config.augment.size={config.augment.size} does not make a model: {err}"
        ) from err


def _backbone_from_config(config, synchronized: bool):
    m = config.model
    if is_keras_hub_name(m.backbone):
        return _keras_hub_backbone_from_config(config)
    backbone_kwargs = {}
    if m.backbone.startswith("resnet"):
        backbone_kwargs = dict(stem=m.stem, width=m.width, synchronized=synchronized, fused_bn=m.get("fused_bn", True))
        backbone_kwargs["zero_init_residual"] = _switch(m.get("zero_init_residual", "auto"))
    elif m.backbone.startswith("vit"):
        backbone_kwargs = dict(drop_path_rate=m.get("drop_path_rate", 0.0))
    return backbone_from_name(m.backbone, **backbone_kwargs)


def _keras_hub_arguments(config) -> dict:
    section = config.model.get("keras_hub")
    return {} if section is None else section.to_dict()


def _keras_hub_backbone_from_config(config):
    """`config.model.backbone="keras_hub:<class | preset>"` built with `config.model.keras_hub`'s arguments."""
    m = config.model
    try:
        return keras_hub_backbone_from_name(m.backbone, _keras_hub_arguments(config), image_size=config.augment.size)
    except (ValueError, TypeError) as err:
        raise ConfigError(
            f"config.model.backbone={m.backbone!r} with config.model.keras_hub={_keras_hub_arguments(config)} "
            f"does not make a backbone: {err}"
        ) from err


def check_keras_hub_backbone(config) -> None:
    """A keras-hub backbone (`config.model.backbone="keras_hub:..."`) exists and takes `config.model.keras_hub`'s
    arguments; a backbone with one input size (keras-hub's ViT) sees only views of that size. Nothing is built."""
    model = config.get("model")
    if model is None or not is_keras_hub_name(model.backbone):
        return
    spec, arguments = model.backbone.removeprefix(PREFIX), _keras_hub_arguments(config)
    problem = keras_hub_problem(spec, arguments)
    if problem:
        raise ConfigError(f"config.model.backbone={model.backbone!r} with config.model.keras_hub: {problem}")
    if config.get("augment") is None:
        return
    size = fixed_input_size(spec, arguments, config.augment.size)
    wrong = [f"config.{field}={side}" for field, side, _ in view_sizes(config) if size and (side, side) != size]
    if wrong:
        raise ConfigError(
            f"config.model.backbone={model.backbone!r} takes {size[0]} x {size[1]} px images only "
            f"(config.model.keras_hub.image_shape, else config.augment.size); {', '.join(wrong)} differ"
        )


def _model_from_config(config, param_specs, synchronized: bool) -> SSLModel:
    check_view_sizes(config)
    sync = synchronized and config.model.sync_bn
    backbone = _backbone_from_config(config, sync)
    mean, std = normalization_from_config(config)
    kind = MODEL_KINDS[config.model.method]
    return kind.from_run_config(config, backbone, mean=mean, std=std, param_specs=param_specs, synchronized=sync)


def optimizer_from_config(config) -> keras.optimizers.Optimizer:
    """The optimizer of `config.optim`, with linear warmup then a constant or cosine learning rate.

    - `adam`: `TorchAdam`, torch's update (eps 1e-8 after the bias correction); with
      `optim.weight_decay_mode="coupled"` its weight decay is `torch.optim.Adam`'s L2 term in the
      gradient, with `"decoupled"` there is none (Adam has no decoupled decay: that is `adamw`).
    - `adamw`: `ScheduledAdamW`, `torch.optim.AdamW`'s update (decoupled decay, torch's epsilon), the
      decay optionally on a cosine (`weight_decay_end`) and on matrices only (`decay_matrices_only`).
    - `sgd`: momentum 0.9; its weight decay is Keras's decoupled shrink (`"decoupled"`) or torch's L2
      term inside the momentum (`"coupled"`: `CoupledSGD`).
    - `lamb`: Keras's.
    """
    o = config.optim
    steps = config.train.steps
    if o.schedule == "cosine":
        decay = max(steps - o.warmup_steps, 1)
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if o.warmup_steps else o.lr,
            decay,
            warmup_target=o.lr if o.warmup_steps else None,
            warmup_steps=o.warmup_steps,
        )
    elif o.warmup_steps:
        lr = keras.optimizers.schedules.PiecewiseConstantDecay([o.warmup_steps], [o.lr * 0.1, o.lr])
    else:
        lr = o.lr
    clip = dict(clipnorm=o.clipnorm) if o.get("clipnorm", 0.0) > 0 else {}
    coupled = o.get("weight_decay_mode", "decoupled") == "coupled"
    if o.name == "adam":  # torch.optim.Adam(lr, weight_decay=wd if coupled else 0)
        return TorchAdam(lr, weight_decay=o.weight_decay if coupled else 0.0, weight_decay_mode="coupled", **clip)
    if o.name == "adamw":  # torch.optim.AdamW, the decay optionally scheduled and masked (DINO, GTSA)
        end = o.weight_decay_end if o.get("weight_decay_end", -1.0) >= 0 else None
        return ScheduledAdamW(
            lr, weight_decay=o.weight_decay, weight_decay_end=end, decay_steps=steps if end is not None else None,
            matrices_only=o.get("decay_matrices_only", False), **clip,
        )  # fmt: skip
    if o.name == "sgd" and coupled:
        return CoupledSGD(lr, momentum=0.9, weight_decay=o.weight_decay, **clip)  # torch.optim.SGD's update
    if o.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, weight_decay=o.weight_decay or None, **clip)
    if o.name == "lamb":
        return keras.optimizers.Lamb(lr, weight_decay=o.weight_decay or None, **clip)
    raise ValueError(f"config.optim.name={o.name!r}: unknown; choose adam, adamw, sgd or lamb")


def view_sizes(config) -> list[tuple[str, int, str]]:
    """`(field, side, what)` of every view size the model sees: the views (also the size export serves at), the
    `gtsa` policy's local crops and the `essl` policy's rotated crop."""
    a = config.augment
    sizes = [("augment.size", int(a.size), "the global views" if a.policy == "gtsa" else "the views")]
    if a.policy == "gtsa" and a.gtsa.num_local > 0:
        sizes.append(("augment.gtsa.local_size", int(a.gtsa.local_size), "the local crops"))
    if a.policy == "essl":
        sizes.append(("augment.essl.size", int(a.essl.size), "the rotated crop"))
    return sizes


def check_view_sizes(config) -> None:
    """A ViT backbone sees every view whole: each view size is a multiple of its patch size.

    Its patch embedding is a convolution with stride and kernel `patch_size`, without padding: a
    view side that is not a multiple would lose its last rows and columns, silently.
    """
    model = config.get("model")
    if model is None or config.get("augment") is None or not model.backbone.startswith("vit"):
        return
    from keras_eqssl.nn.vit_backbone import VIT_PRESETS, patch_fit_problem

    patch = VIT_PRESETS[model.backbone]["patch_size"]
    problems = [
        f"config.{field}={side} ({what}): {problem}"
        for field, side, what in view_sizes(config)
        if (problem := patch_fit_problem(side, patch))
    ]
    if problems:
        raise ConfigError(
            f"config.model.backbone={model.backbone!r} cuts each view into {patch} x {patch} px patches; "
            + "; ".join(problems)
        )
