"""From a config (`keras_eqssl.default_config`) to a `PairModel` and its optimizer."""

from __future__ import annotations

import keras

from keras_eqssl.config_validation import ConfigError, check_objectives
from keras_eqssl.methods.invariance import INVARIANCES
from keras_eqssl.methods.objectives import OBJECTIVES
from keras_eqssl.methods.objectives.base import parse_units
from keras_eqssl.methods.pair_model import IMAGENET_MEAN, IMAGENET_STD, PairModel
from keras_eqssl.nn.registry import backbone_from_name


def _invariance(m, synchronized: bool):
    name = m.invariance
    common = dict(projector_units=parse_units(m.projector), synchronized=synchronized)
    if name == "simclr":
        return INVARIANCES[name](temperature=m.temperature, **common)
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


def model_from_config(config, param_specs=None, synchronized: bool = False) -> PairModel:
    """The `PairModel` of `config.model` for views of `config.augment.size` px.

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


def _model_from_config(config, param_specs, synchronized: bool) -> PairModel:
    m = config.model
    sync = synchronized and m.sync_bn
    backbone_kwargs = {}
    if m.backbone.startswith("resnet"):
        backbone_kwargs = dict(stem=m.stem, width=m.width, synchronized=sync)
    backbone = backbone_from_name(m.backbone, **backbone_kwargs)
    objectives = objectives_from_config(config, sync)
    if config.data.source == "threedie":
        from keras_eqssl.data.threedie import THREEDIE_MEAN as mean
        from keras_eqssl.data.threedie import THREEDIE_STD as std
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
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
        name="_".join([m.invariance, *enabled_objectives(config)]),
    )


def optimizer_from_config(config) -> keras.optimizers.Optimizer:
    """The optimizer of `config.optim`, with linear warmup then a constant or cosine learning rate."""
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
    if o.name == "adam":
        return keras.optimizers.Adam(lr)
    if o.name == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=o.weight_decay)
    if o.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, weight_decay=o.weight_decay or None)
    if o.name == "lamb":
        return keras.optimizers.Lamb(lr, weight_decay=o.weight_decay or None)
    raise ValueError(f"config.optim.name={o.name!r}: unknown; choose adam, adamw, sgd or lamb")
