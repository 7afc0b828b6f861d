"""The base class of objectives: Layers that own their heads, return named losses and register themselves.

A new objective is one file: subclass `Objective`, give it a `short_name`, and it is in
`OBJECTIVES`, in the config (`config.model.<short_name>`, built from its constructor's
arguments), in config validation (its `choices`), in the factory and in the metrics.
"""

from __future__ import annotations

import inspect

import keras

from keras_eqssl.methods.context import ModelContext

TOTAL = "total"

# short_name -> Objective subclass, filled by `Objective.__init_subclass__` (import order).
OBJECTIVES: dict[str, type] = {}

# Constructor arguments that never appear in a config section: the factory passes them.
FACTORY_ARGS = ("synchronized",)


def _units_text(units) -> str:
    return "-".join(str(int(u)) for u in units)


def _is_units(value) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(u, int) for u in value)


def parse_units(text) -> list[int]:
    """`"2048-2048-256"` -> `[2048, 2048, 256]`; `""` -> `[]` (VICReg's `--mlp` format); lists pass."""
    if isinstance(text, (tuple, list)):
        return [int(u) for u in text]
    return [int(u) for u in text.split("-")] if text else []


def check_non_negative(owner: str, **values) -> None:
    """A `ValueError` naming the first of `values` (loss weights, factors) that is not >= 0 (NaN included)."""
    for name, value in values.items():
        if not value >= 0:
            raise ValueError(f"{owner}: {name} must be >= 0; received {value}")


def units_argument(owner: str, name: str, value, allow_empty: bool = False) -> list[int]:
    """An MLP's units argument (an int or a sequence of ints) as a list, or a `ValueError` naming it."""
    units = [int(u) for u in ([value] if isinstance(value, int) else value)]
    if (not units and not allow_empty) or min(units, default=1) < 1:
        what = "positive ints" if allow_empty else "a non-empty list of positive ints"
        raise ValueError(f"{owner}: {name} must be {what}; received {units}")
    return units


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Objective(keras.layers.Layer):
    """A loss that `PairModel` adds to its invariance loss, times `weight`.

    `PairModel` calls `setup(context)` once at construction (check compatibility, raise a
    `ValueError` that says what is wrong, and build the heads), then, in every step,
    `objective(pair, training=...)` with

        pair = {"views":      {"v1": (B, H, W, 3), "v2": ...}   normalised views the encoder saw,
                "tokens":     {"v1": (B, N, d_equi), "v2": ...} equivariant tokens,
                "pooled":     {"v1": (B, d_equi), "v2": ...}    equivariant pooled vectors,
                "features":   {"v1": (B, C), "v2": ...}         the whole pooled representation,
                "invariant":  {"v1": (B, d_inv), "v2": ...}     the invariant part,
                "batch":      the input batch ("views", "params", "rel_rotation", "label", ...)}

    Every entry also holds the views of `extra_views()` (e.g. E-SSL's rotated crops "rot0".."rot3"),
    encoded by the same backbone in one call.

    and it returns a dict of float32 scalars with a `"total"` (the model multiplies it by
    `weight`) and any other terms to log. An objective with several terms (STL) weights them
    inside its total. Values follow the replica convention of `keras_eqssl.losses`
    (global value / R).

    Registration and config (class attributes of a subclass):
        short_name: the registry key, the config section `config.model.<short_name>` and the
            metric prefix. A subclass that sets it is added to `OBJECTIVES`, unless it also sets
            `configurable = False` (an objective only code adds, e.g. the online probe, whose
            class count comes from the data).
        choices: argument -> allowed values, checked by config validation.
        config_defaults: argument -> the config's default where it differs from the constructor's
            (e.g. the main job's tuned weight); units lists are written `"512-128"` in configs.
        resume_apply: arguments a resumed run may change (loss weights, temperatures).
    """

    short_name = "objective"
    choices: dict[str, tuple] = {}
    config_defaults: dict = {}
    resume_apply: tuple[str, ...] = ("weight",)
    configurable = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("short_name")
        if name is None or not cls.__dict__.get("configurable", True):
            return
        known = OBJECTIVES.get(name)
        if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(
                f"Objective short_name {name!r} of {cls.__module__}.{cls.__qualname__} is taken by "
                f"{known.__module__}.{known.__qualname__}; choose another short_name."
            )
        OBJECTIVES[name] = cls

    # --- the config section -----------------------------------------------------------------

    @classmethod
    def config_arguments(cls) -> dict:
        """Constructor argument -> default, as the config holds it (the config section's fields).

        Arguments without a usable default (None, no default, or in `FACTORY_ARGS`) are left out
        unless `config_defaults` gives one; units tuples become `"a-b"` strings.
        """
        out = {}
        for name, param in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or name in FACTORY_ARGS:
                continue
            default = cls.config_defaults.get(name, param.default)
            if default is param.empty or default is None:
                continue
            out[name] = _units_text(default) if _is_units(default) else default
        for name, default in cls.config_defaults.items():
            out.setdefault(name, default)
        return out

    @classmethod
    def config_section(cls) -> dict:
        """`{"enabled": False, **config_arguments()}`: this objective's default config section."""
        return {"enabled": False, **cls.config_arguments()}

    @classmethod
    def arguments_from_config(cls, section, config) -> dict:
        """Constructor keyword arguments from the config section (units strings become lists).

        Subclasses override it for fields the config spells differently (e.g. "auto" targets).
        """
        signature = inspect.signature(cls.__init__).parameters
        args = {}
        for name, value in section.items():
            if name == "enabled" or name not in signature:
                continue
            default = signature[name].default
            args[name] = parse_units(value) if isinstance(value, str) and _is_units(default) else value
        return args

    @classmethod
    def from_config_section(cls, section, config, synchronized: bool = False) -> Objective:
        """The objective a run config asks for (`config.model.<short_name>`)."""
        args = cls.arguments_from_config(section, config)
        if "synchronized" in inspect.signature(cls.__init__).parameters:
            args["synchronized"] = synchronized
        return cls(**args)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        """What makes a config unusable for this objective (e.g. the wrong augmentation policy), or []."""
        return []

    @classmethod
    def batch_problems(cls, per_replica_batch: int) -> list[str]:
        """What makes a per-replica batch of `per_replica_batch` examples unusable (STL: odd), or []."""
        return []

    # --- the layer --------------------------------------------------------------------------

    def extra_views(self) -> list[str]:
        """Views of the batch beyond "v1" and "v2" whose encodings this objective needs."""
        return []

    def term_names(self) -> list[str]:
        """The keys `call` returns (known after `setup`), for metrics."""
        return [TOTAL]

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        check_non_negative(type(self).__name__, weight=weight)
        self.weight = float(weight)
        self.context: ModelContext | None = None

    def setup(self, context: ModelContext) -> None:
        """Checks the objective fits the model and builds its heads; raises ValueError if not."""
        self.context = context

    def build(self, input_shape=None):
        pass  # built by `setup`, which knows the shapes

    def build_from_config(self, config):
        pass  # PairModel builds it with the shapes it knows (when loading too)

    def get_config(self) -> dict:
        return {**super().get_config(), "weight": self.weight}
