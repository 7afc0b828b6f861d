"""One way to add a part: classes that register themselves by name and read their settings from a config.

Objectives (`OBJECTIVES`), invariance losses (`INVARIANCES`) and model kinds (`MODEL_KINDS`)
each keep a registry, a dict that a subclass joins when its class body sets the registry's key
attribute (`short_name`, or `kind` for models): defining the class is all it takes.

`ConfigSection` adds the config side shared by objectives and invariance losses: the section of
the config that sets a part (`config_section`, built from its constructor's arguments), the
constructor's arguments read back from it (`from_config_section`), what config validation checks
(`choices`) and what a resumed run may change (`resume_apply`).

Example:
>>> PARTS = {}
>>> class Part(ConfigSection):
...     registry = PARTS
...     def __init__(self, units=(8, 4), scale: float = 1.0):
...         self.units, self.scale = units, scale
>>> class Wide(Part):
...     short_name = "wide"
...     config_defaults = {"units": (16, 8)}
>>> sorted(PARTS), Wide.config_section()
(['wide'], {'units': '16-8', 'scale': 1.0})
>>> Wide.from_config_section({"units": "32-8", "scale": 2.0}, config=None).units
[32, 8]
"""

from __future__ import annotations

import inspect

# Constructor arguments that never appear in a config section: the factory passes them.
FACTORY_ARGS = ("synchronized",)


def units_text(units) -> str:
    """`[512, 128]` -> `"512-128"`: units lists as configs write them."""
    return "-".join(str(int(u)) for u in units)


def is_units(value) -> bool:
    """Whether `value` is a non-empty sequence of ints (an MLP's units)."""
    return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(u, int) for u in value)


def parse_units(text) -> list[int]:
    """`"2048-2048-256"` -> `[2048, 2048, 256]`; `""` -> `[]` (VICReg's `--mlp` format); lists pass."""
    if isinstance(text, (tuple, list)):
        return [int(u) for u in text]
    return [int(u) for u in text.split("-")] if text else []


def register(registry: dict, key: str, cls: type, what: str) -> None:
    """Adds `cls` to `registry` under `key`; a `ValueError` when another class holds that key.

    The same class defined again (a module reloaded) replaces itself. `what` names the key in
    the message, e.g. `"Objective short_name"`.
    """
    known = registry.get(key)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        attribute = what.split()[-1]
        raise ValueError(
            f"{what} {key!r} of {cls.__module__}.{cls.__qualname__} is taken by "
            f"{known.__module__}.{known.__qualname__}; choose another {attribute}."
        )
    registry[key] = cls


class Registered:
    """A class whose subclasses join `registry` under the value of their `key_attribute`.

    The base class that owns a registry sets `registry` (the dict) and `key_attribute` in its
    body and is not registered itself. A subclass joins when its own body sets the key attribute,
    unless its body also sets `configurable = False` (a part only code adds).
    """

    registry: dict | None = None
    key_attribute = "short_name"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "registry" in cls.__dict__:
            return
        key = cls.__dict__.get(cls.key_attribute)
        if key is None or not cls.__dict__.get("configurable", True):
            return
        owner = next(k for k in cls.__mro__ if "registry" in k.__dict__)
        register(cls.registry, key, cls, f"{owner.__name__} {cls.key_attribute}")


def constructor_parameters(cls) -> dict[str, inspect.Parameter]:
    """Name -> parameter of every argument `cls(...)` takes, the subclass's default first.

    Follows `**kwargs` up the class's own bases (a subclass that forwards them takes its base's
    arguments too), stopping at the base that owns the registry and before Keras's classes.
    """
    params = {}
    for klass in cls.__mro__:
        if klass is object or klass.__module__.startswith("keras."):
            break
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        forwards = False
        for name, param in inspect.signature(init).parameters.items():
            if param.kind is param.VAR_KEYWORD:
                forwards = True
            elif name != "self" and param.kind is not param.VAR_POSITIONAL:
                params.setdefault(name, param)
        if not forwards or "registry" in klass.__dict__:
            break
    return params


class ConfigSection(Registered):
    """A registered part set by a config section built from its constructor's arguments.

    Class attributes of a subclass:
        choices: argument -> allowed values, checked by config validation.
        config_defaults: argument -> the config's default where it differs from the
            constructor's (e.g. the main job's projector); units lists are written `"512-128"`.
        resume_apply: arguments a resumed run may change (loss weights, temperatures).
    """

    choices: dict[str, tuple] = {}
    config_defaults: dict = {}
    resume_apply: tuple[str, ...] = ()

    @classmethod
    def check_choices(cls, **values) -> None:
        """A `ValueError` naming the first of `values` (argument -> value) not among its `choices`."""
        for name, value in values.items():
            if value not in cls.choices[name]:
                raise ValueError(f"{cls.__name__}: {name} must be one of {cls.choices[name]}; received {value!r}")

    @classmethod
    def config_arguments(cls) -> dict:
        """Constructor argument -> default, as the config holds it (the config section's fields).

        Arguments without a usable default (None, no default, or in `FACTORY_ARGS`) are left out
        unless `config_defaults` gives one; units tuples become `"a-b"` strings.
        """
        out = {}
        for name, param in constructor_parameters(cls).items():
            if name in FACTORY_ARGS:
                continue
            default = cls.config_defaults.get(name, param.default)
            if default is param.empty or default is None:
                continue
            out[name] = units_text(default) if is_units(default) else default
        for name, default in cls.config_defaults.items():
            out.setdefault(name, units_text(default) if is_units(default) else default)
        return out

    @classmethod
    def config_section(cls) -> dict:
        """This part's default config section: `config_arguments()`."""
        return cls.config_arguments()

    @classmethod
    def arguments_from_config(cls, section, config) -> dict:
        """Constructor keyword arguments from the config section (units strings become lists).

        Subclasses override it for fields the config spells differently (e.g. "auto" targets).
        """
        params = constructor_parameters(cls)
        args = {}
        for name, value in section.items():
            if name not in params:
                continue
            default = params[name].default
            args[name] = parse_units(value) if isinstance(value, str) and is_units(default) else value
        return args

    @classmethod
    def from_config_section(cls, section, config, synchronized: bool = False):
        """The part a run config asks for, from its section."""
        args = cls.arguments_from_config(section, config)
        if "synchronized" in constructor_parameters(cls):
            args["synchronized"] = synchronized
        return cls(**args)

    @classmethod
    def config_problems(cls, config) -> list[str]:
        """What makes a config unusable for this part (e.g. the wrong augmentation policy), or []."""
        return []

    @classmethod
    def batch_problems(cls, per_replica_batch: int) -> list[str]:
        """What makes a per-replica batch of `per_replica_batch` examples unusable (STL: odd), or []."""
        return []
