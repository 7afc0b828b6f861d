"""The base class of objectives: Layers that own their heads, return named losses and register themselves.

A new objective is one file: subclass `Objective`, give it a `short_name`, and it is in
`OBJECTIVES`, in the config (`config.model.<short_name>`, built from its constructor's
arguments), in config validation (its `choices`), in the factory and in the metrics
(the mechanism: `keras_eqssl.methods.registry`).
"""

from __future__ import annotations

import keras

from keras_eqssl.methods.context import ModelContext
from keras_eqssl.methods.registry import ConfigSection

TOTAL = "total"

# short_name -> Objective subclass, filled by `Objective.__init_subclass__` (import order).
OBJECTIVES: dict[str, type] = {}


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


def enabled_objectives(config) -> list[str]:
    """The short names of the objectives `config.model` turns on, in registry order."""
    return [name for name in OBJECTIVES if name in config.model and config.model[name].enabled]


def objective_problems(config) -> list[str]:
    """What each enabled objective finds wrong with the rest of the config (`config_problems`), field first."""
    return [
        f"config.model.{name}.enabled=True: " + "; ".join(problems)
        for name in enabled_objectives(config)
        if (problems := OBJECTIVES[name].config_problems(config))
    ]


@keras.saving.register_keras_serializable(package="keras_eqssl")
class Objective(ConfigSection, keras.layers.Layer):
    """A loss that `PairModel` adds to its invariance loss, times `weight`.

    `PairModel` calls `setup(context)` once at construction (check compatibility, raise a
    `ValueError` that says what is wrong, and build the heads), then, in every step,
    `objective(pair, training=...)` with

        pair = {"views":       {"v1": (B, H, W, 3), "v2": ...}   normalised views the encoder saw,
                "tokens":      {"v1": (B, N, d_equi), "v2": ...} equivariant tokens,
                "equivariant": {"v1": (B, d_equi), "v2": ...}    the equivariant part (pooled),
                "features":    {"v1": (B, C), "v2": ...}         the whole pooled representation,
                "invariant":   {"v1": (B, d_inv), "v2": ...}     the invariant part,
                "batch":       the input batch ("views", "params", "rel_rotation", "label", ...)}

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

    Example (a toy objective that pulls the two views' equivariant vectors together):
    >>> import numpy as np
    >>> from keras import ops
    >>> from keras_eqssl.methods import OBJECTIVES, Objective, PairModel, SimCLR
    >>> from keras_eqssl.nn import backbone_from_name
    >>> class PooledGap(Objective):
    ...     short_name = "pooled_gap"
    ...
    ...     def call(self, pair, training=None):
    ...         return {"total": ops.mean(ops.square(pair["equivariant"]["v1"] - pair["equivariant"]["v2"]))}
    >>> OBJECTIVES["pooled_gap"] is PooledGap  # registered by the class statement
    True
    >>> model = PairModel(
    ...     backbone_from_name("resnet18", stem="cifar", width=0.0625),
    ...     SimCLR(projector_units=[16, 8]),
    ...     objectives=[PooledGap(weight=0.5)],
    ...     split=(16, 16),
    ...     image_size=16,
    ... )
    >>> x = np.random.default_rng(0).random((2, 4, 16, 16, 3)).astype("float32")
    >>> _, terms = model.compute_losses({"views": {"v1": x[0], "v2": x[1]}})
    >>> sorted(terms)
    ['pooled_gap', 'simclr']
    >>> del OBJECTIVES["pooled_gap"]  # this example leaves the registry as it found it
    """

    registry = OBJECTIVES
    short_name = "objective"
    resume_apply: tuple[str, ...] = ("weight",)

    @classmethod
    def config_section(cls) -> dict:
        """`{"enabled": False, **config_arguments()}`: this objective's default config section."""
        return {"enabled": False, **cls.config_arguments()}

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
