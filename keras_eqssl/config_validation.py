"""Checks a config against the schema in `default_config` before any work starts.

Every error names the field, e.g. `config.augment.jitter.p=1.5: a probability must be in [0, 1]`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import ml_collections

from keras_eqssl import default_config
from keras_eqssl.errors import InputError
from keras_eqssl.probes.results import KNOWN_FAMILIES, PARTS, PROBE_HEADS

# The names of `keras_eqssl.nn.BACKBONES` and `keras_eqssl.methods.INVARIANCES`, spelled out here
# (tests/test_config.py keeps them in step). The objectives' rules come from their classes
# (`Objective.choices`, `config_problems`), which the config's sections are built from.
BACKBONE_NAMES = ("resnet18", "resnet34", "resnet50", "vit_s16", "vit_b16", "vit_tiny")
INVARIANCE_NAMES = ("simclr", "vicreg", "barlow", "simsiam", "byol")
SWITCHES = ("auto", "on", "off")  # "auto": the component's own default
COUPLED = ("sgd", "adam")  # optimizers whose weight decay can be torch's L2 term (optim.weight_decay_mode)
# The smallest side, in px, of a source image (data.image_size, data.threedie.render_size) and of
# every view (augment.size, augment.gtsa.local_size, augment.essl.size). Below it a crop holds too
# few source pixels to be more than a few flat colours (1 px: one colour, whatever the crop), the
# quarter turns of a rotation-prediction crop are (nearly) the same image, and the views' blur has
# no border to mirror (STL's 9-tap kernel mirrors 4 px).
MIN_SIDE = 8
# Why a batch of one pair cannot train each invariance loss (`data.batch_size` >= 2).
_BATCH_NEEDS = {
    "simclr": "SimCLR's negatives are the batch's other pairs",
    "vicreg": "VICReg's variance and covariance terms are statistics over the batch",
    "barlow": "Barlow Twins standardises each feature over the batch before its cross-correlation",
    "simsiam": "SimSiam's projector and predictor BatchNorms normalise over the batch (1 pair: constant outputs)",
    "byol": "BYOL's projector and predictor BatchNorms normalise over the batch (1 pair: constant outputs)",
}


class ConfigError(InputError, ValueError):
    """A config field is unknown, of the wrong type, or has an impossible value."""


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
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema.keys()), n=1)
            hint = f"; did you mean {path}.{close[0]}?" if close else f"; known keys: {sorted(schema.keys())}"
            raise ConfigError(f"{where}: unknown key{hint}")
        default, value = schema[key], config[key]
        if isinstance(default, ml_collections.ConfigDict):
            if not isinstance(value, (ml_collections.ConfigDict, dict)):
                raise ConfigError(f"{where}: expected a section (ConfigDict), received {value!r}.")
            _check_keys(value, default, where)
        elif not _compatible(default, value):
            raise ConfigError(
                f"{where}={value!r}: wrong type; expected {type(default).__name__} like the default {default!r}."
            )


def _probability(v):
    values = v if isinstance(v, (tuple, list)) else (v,)
    if any(not 0.0 <= float(x) <= 1.0 for x in values):
        return "a probability must be in [0, 1]"


def _positive_int(v):
    if int(v) < 1:
        return "must be a positive integer"


def _min_side(what: str) -> Callable:
    def check(v):
        if int(v) < MIN_SIDE:
            return f"must be >= {MIN_SIDE} px: {what}"

    return check


def _source_side(what: str) -> Callable:
    return _min_side(
        f"the views are made from these {what}, and a smaller one is a few flat colours (1 px: one colour)"
    )


def _non_negative_int(v):
    if int(v) < 0:
        return "must be >= 0"


def _range(low=None, high=None, strict_low=False) -> Callable:
    def check(v):
        lo, hi = v
        if lo > hi:
            return "min > max"
        if low is not None and (lo <= low if strict_low else lo < low):
            return f"min must be {'>' if strict_low else '>='} {low}"
        if high is not None and hi > high:
            return f"max must be <= {high}"

    return check


def _one_of(choices) -> Callable:
    def check(v):
        if v not in choices:
            return f"must be one of {tuple(choices)}"

    return check


def _units(v):
    if v == "":
        return None
    try:
        units = [int(u) for u in v.split("-")]
    except ValueError:
        return "must be units joined by '-', e.g. '2048-2048-256'"
    if min(units) < 1:
        return "every unit count must be >= 1"


def _names(known, allow_empty: bool = False) -> Callable:
    def check(v):
        names = [n.strip() for n in v.split(",") if n.strip()]
        if not names and not allow_empty:
            return f"must name at least one of {tuple(known)}, comma-separated"
        unknown = [n for n in names if n not in known]
        if unknown:
            return f"unknown {unknown}; choose from {tuple(known)}, comma-separated"

    return check


def _split(v):
    if min(v) < 0 or (0 in v and tuple(v) != (0, 0)):
        return "must be (d_inv, d_equi) with both >= 1, or (0, 0) for no split"


def _value_rules() -> dict[str, Callable]:
    from keras_eqssl.augment.policies import POLICIES
    from keras_eqssl.data import PHOTO_SPLITS, SOURCES

    scale = _range(0.0, 1.0, strict_low=True)  # an area fraction: (0, 1]
    return {
        "data.source": _one_of(SOURCES),
        "data.photos": _one_of(PHOTO_SPLITS),
        "data.image_size": _source_side("images"),
        "data.num_images": _positive_int,
        "data.batch_size": _positive_int,
        "data.decode_check_limit": _non_negative_int,
        "augment.policy": _one_of(POLICIES),
        "augment.size": _min_side(
            "a smaller view is a few flat colours (1 px: one colour), with no border for the blur to mirror"
        ),
        "augment.crop.scale": scale,
        "augment.crop.ratio": _range(0.0, strict_low=True),
        "augment.jitter.brightness": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.contrast": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.saturation": lambda v: "must be >= 0" if v < 0 else None,
        "augment.jitter.hue": lambda v: "must be in [0, 0.5]" if not 0 <= v <= 0.5 else None,
        "augment.blur.sigma": _range(0.0),
        "augment.rotation.degrees": lambda v: "must be in [0, 180]" if not 0 <= v <= 180 else None,
        "data.threedie.rotation": lambda v: "must be in [0, 180]" if not 0 <= v <= 180 else None,
        "augment.translation.pixels": lambda v: "must be >= 0" if not v >= 0 else None,
        "augment.augmix.severity": lambda v: "must be in [1, 10]" if not 1 <= v <= 10 else None,
        "augment.augmix.width": _positive_int,
        "augment.augmix.depth": lambda v: "must be -1 or >= 1" if v == 0 or v < -1 else None,
        "augment.augmix.alpha": lambda v: "must be > 0" if v <= 0 else None,
        "augment.gtsa.local_size": _min_side(
            "a smaller local crop is a few flat colours (1 px: one colour), and its quarter turns (rotation "
            "prediction) are (nearly) the same image"
        ),
        "augment.gtsa.num_local": _non_negative_int,
        "augment.gtsa.global_scale": scale,
        "augment.gtsa.local_scale": scale,
        "augment.gtsa.min_overlap_global": _probability,
        "augment.gtsa.min_overlap_local": _probability,
        "augment.essl.size": _min_side(
            "the rotation head predicts which of 4 quarter turns the crop shows, and the turns of a smaller crop "
            "are (nearly) the same image (1 px: identical, so the accuracy stays at chance)"
        ),
        "model.method": _one_of(("pair", "gtsa")),
        **_gtsa_rules(),
        "augment.essl.scale": scale,
        "data.threedie.num_objects": _positive_int,
        "data.threedie.views": lambda v: "must be >= 2 (pairs of distinct views)" if v < 2 else None,
        "data.threedie.render_size": _source_side("renders"),
        "model.backbone": _one_of(BACKBONE_NAMES),
        "model.stem": _one_of(("imagenet", "cifar", "sie")),
        "model.width": lambda v: "must be > 0" if v <= 0 else None,
        "model.zero_init_residual": _one_of(SWITCHES),
        "model.drop_path_rate": lambda v: None if 0.0 <= v < 1.0 else "must be in [0, 1)",
        "model.projector_last_bias": _one_of(SWITCHES),
        "model.normalization": _one_of(("auto", "imagenet", "stl10")),
        "model.split": _split,
        "model.invariance": _one_of(INVARIANCE_NAMES),
        "model.projector": _units,
        "model.predictor": _units,
        "model.temperature": lambda v: "must be > 0" if v <= 0 else None,
        "model.negatives": _one_of(("all", "cross_view")),
        "model.projector_last_bn": _one_of(("auto", "none", "affine", "non_affine")),
        "model.byol_momentum": _probability,
        "optim.name": _one_of(("adam", "adamw", "sgd", "lamb")),
        "optim.lr": lambda v: "must be > 0" if v <= 0 else None,
        "optim.weight_decay": lambda v: "must be >= 0" if v < 0 else None,
        "optim.weight_decay_mode": _one_of(("decoupled", "coupled")),
        "optim.schedule": _one_of(("constant", "cosine")),
        "optim.warmup_steps": _non_negative_int,
        "optim.weight_decay_end": lambda v: (
            "must be >= 0, or -1 for a constant weight decay" if v < 0 and v != -1 else None
        ),
        "optim.clipnorm": lambda v: "must be >= 0 (0 = no clipping)" if v < 0 else None,
        "train.steps": _positive_int,
        "train.checkpoint_every": _positive_int,
        "train.log_every": _positive_int,
        "train.image_every": _non_negative_int,
        "train.precision": _one_of(("auto", "float32", "mixed_float16", "mixed_bfloat16")),
        "train.steps_per_execution": _positive_int,
        "eval.families": _names(KNOWN_FAMILIES, allow_empty=True),
        "eval.parts": _names(PARTS),
        "eval.heads": _names(PROBE_HEADS),
        "eval.pairs_per_object": _positive_int,
        "eval.repeats": _positive_int,
        **_objective_rules(),
    }


def _gtsa_rules() -> dict[str, Callable]:
    """`model.gtsa`: weights >= 0, sizes >= 0 (0 = from the backbone), fractions and momenta in range."""
    non_negative = lambda v: "must be >= 0" if v < 0 else None  # noqa: E731
    positive = lambda v: "must be > 0" if v <= 0 else None  # noqa: E731
    rules = {f"model.gtsa.{k}_weight": non_negative for k in ("crop", "correspondence", "rotation", "dino")}
    rules.update(
        {
            "model.gtsa.correspondence_warmup_steps": _non_negative_int,
            "model.gtsa.roi_sizes": lambda v: (
                "must be two ints >= 1, or (0, 0) for GTSA's sizes scaled to the grid"
                if tuple(v) != (0, 0) and min(v) < 1
                else None
            ),
            "model.gtsa.sampling_ratio": lambda v: (
                "must be an int >= 1, or -1 for torchvision's adaptive count"
                if v != -1 and (int(v) != v or v < 1)
                else None
            ),
            "model.gtsa.match_fraction": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
            "model.gtsa.projection_units": _non_negative_int,
            "model.gtsa.rotation_units": _units,
            "model.gtsa.dino_units": _positive_int,
            "model.gtsa.dino_hidden_units": _positive_int,
            "model.gtsa.dino_bottleneck_units": _positive_int,
            "model.gtsa.student_temperature": positive,
            "model.gtsa.teacher_temperature": positive,
            "model.gtsa.center_momentum": _probability,
            "model.gtsa.momentum": _probability,
        }
    )
    return rules


def _objective_rules() -> dict[str, Callable]:
    """Each registered objective's section: its `choices`, units strings, weights >= 0, temperatures > 0."""
    from keras_eqssl.default_config import registered_objectives

    rules = {}
    for name, objective in registered_objectives().items():
        for key, default in objective.config_arguments().items():
            path = f"model.{name}.{key}"
            if key in objective.choices:
                rules[path] = _one_of(objective.choices[key])
            elif key == "weight" or key.endswith(("_weight", "_factor")):
                rules[path] = lambda v: "must be >= 0" if v < 0 else None
            elif key == "temperature":
                rules[path] = lambda v: "must be > 0" if v <= 0 else None
            elif key.endswith("_units") and isinstance(default, str):
                rules[path] = _units
            elif key.endswith("_size") or key.endswith("_dim"):
                rules[path] = _non_negative_int if key.endswith("_size") else _positive_int
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
    schema's type, probabilities (`p`, `*_p`) lie in [0, 1], ranges have min <= max and area
    fractions (crop scales) lie in (0, 1], sizes are positive, image and view sides are at least
    `MIN_SIDE` px, a ViT's view sides are multiples of its patch size, names are known, every
    float is finite (no NaN or inf), and a batch holds at least 2 pairs (2 images for DINO).

    Example:
    >>> cfg = default_config.get_config()
    >>> cfg.augment.jitter.p = 1.5
    >>> validate(cfg)
    Traceback (most recent call last):
    ...
    keras_eqssl.config_validation.ConfigError: config.augment.jitter.p=1.5: a probability must be in [0, 1]
    """
    schema = default_config.get_config() if schema is None else schema
    _check_keys(config, schema, "config")
    rules = _value_rules()
    for path, key, value in _flatten(config):
        if not _finite(value):  # NaN compares false: it would pass every range rule below
            raise ConfigError(f"config.{path}={value!r}: must be a finite number")
        rule = rules.get(path)
        if rule is None and (key == "p" or key.endswith("_p")):
            rule = _probability
        problem = rule(value) if rule is not None and value is not None else None
        if problem:
            raise ConfigError(f"config.{path}={value!r}: {problem}")
    _check_together(config)


def _finite(value) -> bool:
    """False for a NaN or infinite float, alone or inside a tuple/list."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    return all(math.isfinite(v) for v in values if isinstance(v, float))


def check_objectives(config) -> None:
    """Every enabled objective accepts the rest of the config (its policy, data source, batch)."""
    from keras_eqssl.default_config import registered_objectives

    model = config.get("model")
    if model is None:
        return
    for name, objective in registered_objectives().items():
        if name in model and model[name].get("enabled", False):
            problems = objective.config_problems(config)
            if problems:
                raise ConfigError(f"config.model.{name}.enabled=True: " + "; ".join(problems))


def check_method(config) -> None:
    """`model.method="gtsa"` trains on the `gtsa` policy's multi-crops, with some loss on and no pair objective."""
    model = config.get("model")
    if model is None or model.get("method", "pair") != "gtsa":
        return
    if config.augment.policy != "gtsa":
        raise ConfigError(
            f"config.model.method='gtsa' trains on multi-crops: set config.augment.policy='gtsa' "
            f"(received {config.augment.policy!r})"
        )
    g = model.gtsa
    if not any(g[k] > 0 for k in ("crop_weight", "correspondence_weight", "rotation_weight", "dino_weight")):
        raise ConfigError(
            "config.model.gtsa: every loss weight is 0; turn one on (GTSA: crop, correspondence, rotation)"
        )
    if g.rotation_weight > 0 and not config.augment.gtsa.rotate:
        raise ConfigError(
            "config.model.gtsa.rotation_weight > 0 predicts each crop's quarter turns, but "
            "config.augment.gtsa.rotate=False makes every crop upright; set one of them"
        )
    enabled = [name for name in model.keys() if isinstance(model[name], ml_collections.ConfigDict)
               and model[name].get("enabled", False)]  # fmt: skip
    if enabled:
        raise ConfigError(
            f"config.model.method='gtsa' does not take the pair objectives {enabled}; set their "
            "config.model.<name>.enabled=False"
        )


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


def _check_batch(config) -> None:
    """A batch of 1 is refused where the loss needs several examples (contrast, batch statistics, DINO's centre)."""
    data, model = config.get("data"), config.get("model")
    if data is None or model is None or data.batch_size != 1:
        return
    if model.get("method", "pair") == "gtsa":
        if model.gtsa.dino_weight <= 0:
            return  # GTSA's crop, correspondence and rotation losses are per image
        need = (
            "DINO (config.model.gtsa.dino_weight > 0) needs at least 2 images per batch: its centre, which keeps "
            "the teacher from collapsing, moves towards the teacher's mean output over each batch's images"
        )
    else:
        why = _BATCH_NEEDS.get(model.invariance, "")
        need = f"config.model.invariance={model.invariance!r} needs at least 2 pairs per batch: {why}"
    raise ConfigError(f"config.data.batch_size=1: {need}; use 2 or more")


def _check_simclr_options(model) -> None:
    """`model.negatives` and `model.projector_last_bn` are SimCLR's: another invariance loss leaves them as they are."""
    if model is None or model.get("method", "pair") != "pair" or model.get("invariance") == "simclr":
        return
    changed = {k: model[k] for k, default in (("negatives", "all"), ("projector_last_bn", "auto"))
               if model.get(k, default) != default}  # fmt: skip
    if changed:
        raise ConfigError(
            f"{', '.join(f'config.model.{k}={v!r}' for k, v in changed.items())}: SimCLR's options; "
            f"config.model.invariance={model.get('invariance')!r} does not take them (use invariance='simclr')"
        )


def _check_together(config) -> None:
    """Rules that tie fields together."""
    train = config.get("train")
    check_method(config)
    check_view_sizes(config)
    _check_batch(config)
    if config.get("model") is not None and config.model.get("method", "pair") == "pair":
        check_objectives(config)
    if train is not None and train.checkpoint_every < train.steps and train.steps % train.checkpoint_every:
        raise ConfigError(
            f"config.train.checkpoint_every={train.checkpoint_every} must divide config.train.steps={train.steps} "
            "(or be >= it): checkpoints mark the ends of equal Keras epochs."
        )
    _check_simclr_options(config.get("model"))
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
