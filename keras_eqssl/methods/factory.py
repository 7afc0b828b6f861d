"""From a config (`keras_eqssl.default_config`) to a model (`PairModel`, `GTSAModel`) and its optimizer."""

from __future__ import annotations

import keras

from keras_eqssl.config_validation import ConfigError, check_method, check_objectives, check_view_sizes
from keras_eqssl.methods.coupled_sgd import CoupledSGD
from keras_eqssl.methods.gtsa import GTSAModel
from keras_eqssl.methods.invariance import INVARIANCES
from keras_eqssl.methods.objectives import OBJECTIVES
from keras_eqssl.methods.objectives.base import parse_units
from keras_eqssl.methods.pair_model import IMAGENET_MEAN, IMAGENET_STD, PairModel
from keras_eqssl.methods.scheduled_adamw import ScheduledAdamW
from keras_eqssl.methods.ssl_model import SSLModel
from keras_eqssl.methods.torch_adam import TorchAdam
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


def _invariance(m, synchronized: bool):
    name = m.invariance
    common = dict(projector_units=parse_units(m.projector), synchronized=synchronized)
    if _switch(m.get("projector_last_bias", "auto")) is not None:
        common["projector_last_bias"] = _switch(m.projector_last_bias)
    if name == "simclr":
        last_bn = m.get("projector_last_bn", "auto")
        if last_bn != "auto":
            common["projector_last_bn"] = last_bn
        return INVARIANCES[name](temperature=m.temperature, negatives=m.get("negatives", "all"), **common)
    if name == "vicreg":
        return INVARIANCES[name](**dict(m.vicreg), **common)
    if name == "barlow":
        return INVARIANCES[name](lambd=m.barlow_lambda, **common)
    if name == "simsiam":
        return INVARIANCES[name](predictor_units=parse_units(m.predictor), **common)
    if name == "byol":
        return INVARIANCES[name](predictor_units=parse_units(m.predictor), base_momentum=m.byol_momentum, **common)
    raise ValueError(f"config.model.invariance={name!r}: unknown; choose one of {sorted(INVARIANCES)}")


def enabled_objectives(config) -> list[str]:
    """The short names of the objectives `config.model` turns on, in registry order."""
    return [name for name in OBJECTIVES if name in config.model and config.model[name].enabled]


def objectives_from_config(config, synchronized: bool = False) -> list:
    """The enabled objectives of `config`, each built from its section `config.model.<short_name>`."""
    check_objectives(config)
    return [
        OBJECTIVES[name].from_config_section(config.model[name], config, synchronized=synchronized)
        for name in enabled_objectives(config)
    ]


def model_name(config) -> str:
    """What the run trains, e.g. `vicreg_recon`, `simclr_stl`, `gtsa`, `dino` (the DINO-like baseline)."""
    if config.model.get("method", "pair") == "gtsa":
        g = config.model.gtsa
        return (
            "dino"
            if g.dino_weight > 0 and not (g.crop_weight or g.correspondence_weight or g.rotation_weight)
            else "gtsa"
        )
    return "_".join([config.model.invariance, *enabled_objectives(config)])


def model_from_config(config, param_specs=None, synchronized: bool = False) -> SSLModel:
    """The model of `config.model` (`method`: a `PairModel` or a `GTSAModel`) for views of `config.augment.size` px.

    A model the config cannot build (a split wider than the backbone, a view size the ViT's
    patch grid or the decoder cannot use) is a `ConfigError` naming the fields involved.

    Args:
        config: a config with the `default_config` schema.
        param_specs: the policy's `ParamSpec`s per view (see `train_batches`), to check
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


def _gtsa_from_config(config, backbone, mean, std) -> GTSAModel:
    g = config.model.gtsa
    return GTSAModel(
        backbone,
        num_local=config.augment.gtsa.num_local,
        image_size=config.augment.size,
        local_size=config.augment.gtsa.local_size,
        crop_weight=g.crop_weight,
        correspondence_weight=g.correspondence_weight,
        rotation_weight=g.rotation_weight,
        dino_weight=g.dino_weight,
        correspondence_warmup_steps=g.correspondence_warmup_steps,
        roi_sizes=None if tuple(g.roi_sizes) == (0, 0) else tuple(g.roi_sizes),
        sampling_ratio=g.sampling_ratio,
        match_fraction=g.match_fraction,
        projection_units=g.projection_units or None,
        rotation_units=parse_units(g.rotation_units) or None,
        dino_units=g.dino_units,
        dino_hidden_units=g.dino_hidden_units,
        dino_bottleneck_units=g.dino_bottleneck_units,
        student_temperature=g.student_temperature,
        teacher_temperature=g.teacher_temperature,
        center_momentum=g.center_momentum,
        mean=mean,
        std=std,
        total_steps=config.train.steps,
        teacher_base_momentum=g.momentum,
        name=model_name(config),
    )


def _model_from_config(config, param_specs, synchronized: bool) -> SSLModel:
    m = config.model
    check_view_sizes(config)
    sync = synchronized and m.sync_bn
    backbone_kwargs = {}
    if m.backbone.startswith("resnet"):
        backbone_kwargs = dict(stem=m.stem, width=m.width, synchronized=sync, fused_bn=m.get("fused_bn", True))
        backbone_kwargs["zero_init_residual"] = _switch(m.get("zero_init_residual", "auto"))
    elif m.backbone.startswith("vit"):
        backbone_kwargs = dict(drop_path_rate=m.get("drop_path_rate", 0.0))
    backbone = backbone_from_name(m.backbone, **backbone_kwargs)
    mean, std = normalization_from_config(config)
    if m.get("method", "pair") == "gtsa":
        check_method(config)
        return _gtsa_from_config(config, backbone, mean, std)
    objectives = objectives_from_config(config, sync)
    return PairModel(
        backbone,
        invariance=_invariance(m, sync),
        objectives=objectives,
        split=None if tuple(m.split) == (0, 0) else tuple(m.split),
        image_size=config.augment.size,
        param_specs=param_specs,
        mean=mean,
        std=std,
        total_steps=config.train.steps,
        name=model_name(config),
    )


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
