"""Checks a config against the schema in `default_config` before any work starts.

Every error names the field, e.g. `config.augment.jitter.p=1.5: a probability must be in [0, 1]`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import ml_collections

from keras_eqssl import default_config
from keras_eqssl.config_fields import (
    min_side,
    names,
    non_negative_int,
    one_of,
    positive_int,
    probability,
    section_rules,
    value_range,
)
from keras_eqssl.errors import ConfigError
from keras_eqssl.probes.results import KNOWN_FAMILIES, PARTS, PROBE_HEADS

# The names of `keras_eqssl.nn.BACKBONES`, spelled out here (tests/test_config.py keeps them in
# step). The rules of the model kinds, invariance losses and objectives come from their registries
# (`keras_eqssl.methods.MODEL_KINDS`, `INVARIANCES`, `OBJECTIVES`), which the config's sections are
# built from: their `choices`, `config_rules`, `config_problems` and `batch_problems`.
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "vit_s16", "vit_b16", "vit_tiny")
SWITCHES = ("auto", "on", "off")  # "auto": the component's own default
# Sections whose keys are a component's own arguments (keras-hub constructor arguments), not schema fields.
OPEN_SECTIONS = ("config.model.keras_hub.",)
COUPLED = ("sgd", "adam")  # optimizers whose weight decay can be torch's L2 term (optim.weight_decay_mode)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _compatible(default, value) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if _is_number(default):
        return _is_number(value) and (isinstance(default, float) or isinstance(value, int))
    if isinstance(default, (tuple, list)):
        return (
            isinstance(value, (tuple, list))
            and len(value) == len(default)
            and all(_compatible(d, v) for d, v in zip(default, value))
        )
    return isinstance(value, type(default))


def _check_keys(config, schema, path: str) -> None:
    for key in config.keys():
        where = f"{path}.{key}"
        if key not in schema and where.startswith(OPEN_SECTIONS):
            continue  # arguments of a component, checked by it (keras-hub: methods.factory.check_keras_hub_backbone)
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema.keys()), n=1)
            hint = f"; did you mean {path}.{close[0]}?" if close else f"; known keys: {sorted(schema.keys())}"
            raise ConfigError(f"{where}: unknown key{hint}")
        default, value = schema[key], config[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, (ml_collections.ConfigDict, dict)):
                raise ConfigError(f"{where}: expected a section (ConfigDict), received {value!r}.")
            _check_keys(value, default, where)
        elif value is None and default is not None:  # ml_collections.config_dict.placeholder(type): required
            raise ConfigError(f"{where} is required and not set: give it on the command line, --{where}=VALUE")
        elif not _compatible(default, value):
            raise ConfigError(
                f"{where}={value!r}: wrong type; expected {type(default).__name__} like the default {default!r}."
            )


def _source_side(what: str) -> Callable:
    return min_side(f"the views are made from these {what}, and a smaller one is a few flat colours (1 px: one colour)")


def _split(v):
    if min(v) < 0 or (0 in v and tuple(v) != (0, 0)):
        return "must be (d_inv, d_equi) with both >= 1, or (0, 0) for no split"


def _value_rules() -> dict[str, Callable]:
    from keras_eqssl.augment.policies import POLICIES
    from keras_eqssl.data import PHOTO_SPLITS, SOURCES
    from keras_eqssl.nn.keras_hub_backbone import is_keras_hub_name

    scale = value_range(0.0, 1.0, strict_low=True)  # an area fraction: (0, 1]
    return {
        "data.source": one_of(SOURCES),
        "data.photos": one_of(PHOTO_SPLITS),
        "data.image_size": _source_side("images"),
        "data.num_images": positive_int,
        "data.batch_size": positive_int,
        "data.decode_check_limit": non_negative_int,
        "augment.policy": one_of(POLICIES),
        "augment.size": min_side(
            "a smaller view is a few flat colours (1 px: one colour), with no border for the blur to mirror"
        ),
        "augment.crop.scale": scale,
        "augment.crop.ratio": value_range(0.0, strict_low=True),
        "augment.jitter.brightness": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.contrast": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.saturation": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.hue": lambda v: "must be in [0, 0.5]" if not 0 <= v <= 0.5 else None,
        "augment.blur.sigma": value_range(0.0),
        "augment.rotation.degrees": lambda v: "must be in [0, 180]" if not 0 <= v <= 180 else None,
        "data.threedie.rotation": lambda v: "must be in [0, 180]" if not 0 <= v <= 180 else None,
        "augment.translation.pixels": lambda v: "must be >= 0" if not v >= 0 else None,
        "augment.augmix.severity": lambda v: "must be in [1, 10]" if not 1 <= v <= 10 else None,
        "augment.augmix.width": positive_int,
        "augment.augmix.depth": lambda v: "must be -1 or >= 1" if v == 0 or v < -1 else None,
        "augment.augmix.alpha": lambda v: "must be > 0" if v <= 0 else None,
        "augment.gtsa.local_size": min_side(
            "a smaller local crop is a few flat colours (1 px: one colour), and its quarter turns (rotation "
            "prediction) are (nearly) the same image"
        ),
        "augment.gtsa.num_local": non_negative_int,
        "augment.gtsa.global_scale": scale,
        "augment.gtsa.local_scale": scale,
        "augment.gtsa.min_overlap_global": probability,
        "augment.gtsa.min_overlap_local": probability,
        "augment.essl.size": min_side(
            "the rotation head predicts which of 4 quarter turns the crop shows, and the turns of a smaller crop "
            "are (nearly) the same image (1 px: identical, so the accuracy stays at chance)"
        ),
        "model.method": one_of(tuple(default_config.registered_model_kinds())),
        "augment.essl.scale": scale,
        "data.threedie.num_objects": positive_int,
        "data.threedie.views": lambda v: "must be >= 2 (pairs of distinct views)" if v < 2 else None,
        "data.threedie.render_size": _source_side("renders"),
        "model.backbone": lambda v: None if is_keras_hub_name(v) else one_of(BACKBONE_NAMES)(v),
        "model.stem": one_of(("imagenet", "cifar", "sie")),
        "model.width": lambda v: "must be > 0" if v <= 0 else None,
        "model.zero_init_residual": one_of(SWITCHES),
        "model.drop_path_rate": lambda v: None if 0.0 <= v < 1.0 else "must be in [0, 1)",
        "model.normalization": one_of(("auto", "imagenet", "stl10")),
        "model.split": _split,
        "model.invariance.name": one_of(tuple(default_config.registered_invariances())),
        "optim.name": one_of(("adam", "adamw", "sgd", "lamb")),
        "optim.lr": lambda v: "must be > 0" if v <= 0 else None,
        "optim.weight_decay": lambda v: "must be >= 0" if v < 0 else None,
        "optim.weight_decay_mode": one_of(("decoupled", "coupled")),
        "optim.schedule": one_of(("constant", "cosine")),
        "optim.warmup_steps": non_negative_int,
        "optim.weight_decay_end": lambda v: (
            "must be >= 0, or -1 for a constant weight decay" if v < 0 and v != -1 else None
        ),
        "optim.clipnorm": lambda v: "must be >= 0 (0 = no clipping)" if v < 0 else None,
        "train.steps": positive_int,
        "train.checkpoint_every": positive_int,
        "train.log_every": positive_int,
        "train.image_every": non_negative_int,
        "train.collapse_std_fraction": probability,
        "train.collapse_rank_fraction": probability,
        "train.precision": one_of(("auto", "float32", "mixed_float16", "mixed_bfloat16")),
        "train.steps_per_execution": positive_int,
        "train.accumulate_steps": positive_int,
        "eval.families": names(KNOWN_FAMILIES, allow_empty=True),
        "eval.parts": names(PARTS),
        "eval.heads": names(PROBE_HEADS),
        "eval.pairs_per_object": positive_int,
        "eval.repeats": positive_int,
        **_registered_rules(),
    }


def _registered_rules() -> dict[str, Callable]:
    """The sections of the registered parts: each model kind's `config_rules`, each invariance loss's
    (`model.invariance.<name>`) and objective's (`model.<name>`) arguments."""
    rules = {}
    for kind in default_config.registered_model_kinds().values():
        rules.update(kind.config_rules())
    for name, loss in default_config.registered_invariances().items():
        rules.update(section_rules(f"model.invariance.{name}", loss))
    for name, objective in default_config.registered_objectives().items():
        rules.update(section_rules(f"model.{name}", objective))
    return rules


def _flatten(config, prefix=""):
    for key in config.keys():
        value = config[key]
        path = f"{prefix}{key}"
        if isinstance(value, (ml_collections.ConfigDict, dict)):
            yield from _flatten(value, path + ".")
        else:
            yield path, key, value


def validate(config: ml_collections.ConfigDict, schema: ml_collections.ConfigDict | None = None) -> None:
    """Raises `ConfigError` naming the first bad field; returns None for a good config.

    Checks: every key exists in the schema (`default_config.get_config()`), every value has the
    schema's type and is set (None: a field the config file requires, made with
    `ml_collections.config_dict.placeholder`), probabilities (`p`, `*_p`) lie in [0, 1], ranges have min <= max and area
    fractions (crop scales) lie in (0, 1], sizes are positive, image and view sides are at least
    `MIN_SIDE` px, a ViT's view sides are multiples of its patch size, names are known, every
    float is finite (no NaN or inf), and a batch holds at least 2 pairs (2 images for DINO).

    Example:
    >>> cfg = default_config.get_config()
    >>> cfg.augment.jitter.p = 1.5
    >>> validate(cfg)
    Traceback (most recent call last):
    ...
    keras_eqssl.errors.ConfigError: config.augment.jitter.p=1.5: a probability must be in [0, 1]
    """
    schema = default_config.get_config() if schema is None else schema
    _check_keys(config, schema, "config")
    rules = _value_rules()
    for path, key, value in _flatten(config):
        if not _finite(value):  # NaN compares false: it would pass every range rule below
            raise ConfigError(f"config.{path}={value!r}: must be a finite number")
        rule = rules.get(path)
        if rule is None and (key == "p" or key.endswith("_p")):
            rule = probability
        problem = rule(value) if rule is not None and value is not None else None
        if problem:
            raise ConfigError(f"config.{path}={value!r}: {problem}")
    _check_together(config)


def _finite(value) -> bool:
    """False for a NaN or infinite float, alone or inside a tuple/list."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    return all(math.isfinite(v) for v in values if isinstance(v, float))


def check_model_kind(config) -> None:
    """The model kind (`config.model.method`) accepts the config (`config_problems`) and its batch (`batch_problems`)."""
    model = config.get("model")
    kind = None if model is None else default_config.registered_model_kinds().get(model.get("method", "pair"))
    if kind is None:
        return
    problems = kind.config_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))
    if config.get("data") is None:
        return
    micro = micro_batch_size(config)
    problems = kind.batch_problems(micro_batch_config(config), micro)  # one replica, one micro-batch
    if problems:
        per = f" (micro-batches of {micro})" if micro != config.data.batch_size else ""
        raise ConfigError(f"config.data.batch_size={config.data.batch_size}{per}: " + "; ".join(problems))


def micro_batch_size(config, replicas: int = 1) -> int:
    """The examples a replica's loss sees at once: `data.batch_size / (replicas * train.accumulate_steps)`;
    `ConfigError` when the batch does not split evenly into them."""
    batch, k = config.data.batch_size, (config.get("train") or {}).get("accumulate_steps", 1)
    if batch % (replicas * k):
        over = f"{replicas} replicas x " if replicas > 1 else ""
        raise ConfigError(
            f"config.data.batch_size={batch} does not split into {over}config.train.accumulate_steps={k} "
            f"micro-batches: use a multiple of {replicas * k} (each update averages the gradients of {k} "
            "micro-batches of batch_size / (replicas x accumulate_steps) examples)."
        )
    return batch // (replicas * k)


def micro_batch_config(config):
    """`config` as one micro-batch sees it: `data.batch_size` divided by `train.accumulate_steps`
    (for the model kinds' `batch_problems`, whose batch statistics span the replicas); `config` itself for 1."""
    k = (config.get("train") or {}).get("accumulate_steps", 1)
    if k == 1:
        return config
    micro = config.copy_and_resolve_references()
    micro.data.batch_size = config.data.batch_size // k
    return micro


def _check_together(config) -> None:
    """Rules that tie fields together."""
    from keras_eqssl.methods.factory import check_keras_hub_backbone, check_view_sizes

    train = config.get("train")
    check_view_sizes(config)
    check_keras_hub_backbone(config)
    check_model_kind(config)
    if train is not None and train.checkpoint_every < train.steps and train.steps % train.checkpoint_every:
        raise ConfigError(
            f"config.train.checkpoint_every={train.checkpoint_every} must divide config.train.steps={train.steps} "
            "(or be >= it): checkpoints mark the ends of equal Keras epochs."
        )
    optim = config.get("optim")
    if optim is not None and optim.get("weight_decay_mode", "decoupled") == "coupled" and optim.name not in COUPLED:
        raise ConfigError(
            f"config.optim.weight_decay_mode='coupled' (torch's L2 term in the gradient) is for config.optim.name="
            f"'sgd' (torch.optim.SGD) or 'adam' (torch.optim.Adam); received config.optim.name={optim.name!r} "
            "(adamw's decay is decoupled, as torch.optim.AdamW's: set weight_decay_mode='decoupled', or name='adam' "
            "for Adam with an L2 term)"
        )
    per_execution = train.get("steps_per_execution", 1) if train is not None else 1
    if train is not None and min(train.checkpoint_every, train.steps) % per_execution:
        raise ConfigError(
            f"config.train.steps_per_execution={per_execution} must divide the epoch length "
            f"min(train.checkpoint_every, train.steps)={min(train.checkpoint_every, train.steps)}: a checkpoint "
            "is written between executions."
        )
