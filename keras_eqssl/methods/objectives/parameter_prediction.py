"""CIPER / AugSelf: an MLP on both views' features predicts the augmentation parameters of the pair."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.losses.parameter_regression import parameter_regression
from keras_eqssl.methods.context import RELATIVE_SPECS
from keras_eqssl.methods.objectives.base import TOTAL, Objective
from keras_eqssl.nn.mlp import MLP

MODES = ("pair", "difference")
FEATURES = ("equivariant", "all")


def _relative(spec: ParamSpec, w1, w2):
    """AugSelf's parameter difference: w1 - w2, xor for binary, (w1 - w2) mod C for categorical."""
    if spec.kind == "continuous":
        return ops.cast(w1, "float32") - ops.cast(w2, "float32")
    if spec.kind == "binary":
        return ops.cast(ops.not_equal(w1, w2), "float32")
    return ops.mod(ops.cast(w1, "int32") - ops.cast(w2, "int32"), spec.num_classes)


def auto_targets(config) -> list[str]:
    """The targets `"auto"` means for a run config: what its data source provides."""
    if config.data.source == "threedie" and not config.data.threedie.augment_renders:
        return ["rel_rotation", "rel_color"]
    return ["crop", "color"]


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ParameterPrediction(Objective):
    """Predicts recorded augmentation parameters (or 3DIEBench's relative pose) from a pair of views.

    CIPER (Xu & Triesch, arXiv 2302.02330, re-implemented after trieschlab/AASSL `ciper.py`):
    `MLP(concat[f(x1), f(x2)])` regresses the parameters, batch-standardised, with MSE; binary
    ones use BCE and categorical ones cross-entropy (`keras_eqssl.losses.parameter_regression`).

    Targets:
    - a key the policy records (`"crop"`, `"color"`, `"flip"`, ...): with `mode="pair"` (CIPER)
      the head predicts both views' values (`"v1_crop"`, `"v2_crop"`); with `mode="difference"`
      (AugSelf, Lee et al. NeurIPS 2021) the difference w1 - w2 (xor for binary, (k1 - k2) mod C
      for categorical), as `"crop"`;
    - `"rel_rotation"` (quaternion, 4) and `"rel_color"` (2): 3DIEBench's relative targets, read
      from the batch's top level (CIPER's "action").

    Args:
        targets: list of target keys (see above).
        weight: the loss weight.
        mode: `"pair"` or `"difference"`.
        hidden_units: hidden layers of the MLP head (AASSL: one of 1024).
        features: `"equivariant"` (the split's equivariant part) or `"all"` (the whole vector).
        standardize: batch-standardise continuous targets.
        synchronized: synchronised BatchNorm in the head.

    Returns (call): `{"total", <one per predicted key>}`.
    """

    short_name = "params"
    choices = {"mode": MODES, "features": FEATURES}
    # targets "auto": what the data source provides (`auto_targets`); a 256-unit hidden layer.
    config_defaults = {"targets": "auto", "hidden_units": "256"}

    def __init__(
        self,
        targets=("crop", "color"),
        weight: float = 1.0,
        mode: str = "pair",
        hidden_units=(1024,),
        features: str = "equivariant",
        standardize: bool = True,
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        if isinstance(targets, str):
            targets = [targets]
        self.targets = [str(t) for t in targets]
        if not self.targets:
            raise ValueError("ParameterPrediction: give at least one target key.")
        if mode not in MODES:
            raise ValueError(f"ParameterPrediction: mode must be one of {MODES}; received {mode!r}")
        if features not in FEATURES:
            raise ValueError(f"ParameterPrediction: features must be one of {FEATURES}; received {features!r}")
        self.mode = mode
        self.hidden_units = [int(u) for u in hidden_units]
        self.features = features
        self.standardize = bool(standardize)
        self.synchronized = bool(synchronized)
        self.head = None

    @classmethod
    def arguments_from_config(cls, section, config) -> dict:
        args = super().arguments_from_config(section, config)
        targets = args["targets"]
        if isinstance(targets, str):
            args["targets"] = auto_targets(config) if targets == "auto" else [t.strip() for t in targets.split(",")]
            args["targets"] = [t for t in args["targets"] if t]
        return args

    def _view_specs(self, context) -> dict[str, ParamSpec]:
        if context.param_specs is None:
            return {}
        per_view = [{s.key: s for s in specs} for specs in context.param_specs.values()]
        return {k: s for k, s in per_view[0].items() if all(k in v for v in per_view)}

    def setup(self, context) -> None:
        super().setup(context)
        recorded = self._view_specs(context)
        self.specs: dict[str, ParamSpec] = {}
        self.sources: dict[str, tuple[str, str | None]] = {}  # output key -> (target key, view or None)
        for key in self.targets:
            if key in RELATIVE_SPECS:
                self.specs[key], self.sources[key] = RELATIVE_SPECS[key], (key, None)
            elif key in recorded:
                if self.mode == "pair":
                    for view in ("v1", "v2"):
                        self.specs[f"{view}_{key}"] = recorded[key]
                        self.sources[f"{view}_{key}"] = (key, view)
                else:
                    self.specs[key], self.sources[key] = recorded[key], (key, "diff")
            else:
                known = sorted(recorded) if context.param_specs is not None else "(no augmentation policy: none)"
                raise ValueError(
                    f"ParameterPrediction: target {key!r} is not recorded by the augmentation policy and is not a "
                    f"relative 3DIEBench target. The policy records {known}; relative targets: {sorted(RELATIVE_SPECS)}."
                )
        width = 0
        for spec in self.specs.values():
            m = math.prod(spec.shape)
            width += m * spec.num_classes if spec.kind == "categorical" else m
        self._out_width = width
        in_dim = context.equivariant_dim if self.features == "equivariant" else context.feature_dim
        self.head = MLP(
            [*self.hidden_units, width], synchronized=self.synchronized, name="head", dtype=self.dtype_policy
        )
        self.head.build((None, 2 * in_dim))

    def term_names(self) -> list[str]:
        return [TOTAL, *self.specs]

    def _split_outputs(self, y) -> dict:
        out, start = {}, 0
        for key, spec in self.specs.items():
            m = math.prod(spec.shape) * (spec.num_classes if spec.kind == "categorical" else 1)
            out[key] = y[:, start : start + m]
            start += m
        return out

    def _targets(self, batch: dict) -> dict:
        out = {}
        for key, (target, view) in self.sources.items():
            if view is None:
                if target not in batch:
                    raise ValueError(f"ParameterPrediction: the batch has no {target!r} (a 3DIEBench pair target).")
                out[key] = batch[target]
                continue
            params = batch.get("params")
            if not params or any(target not in params.get(v, {}) for v in ("v1", "v2")):
                raise ValueError(f"ParameterPrediction: the batch records no params[v][{target!r}] for both views.")
            if view == "diff":
                out[key] = _relative(self.specs[key], params["v1"][target], params["v2"][target])
            else:
                out[key] = params[view][target]
        return out

    def call(self, pair: dict, training=None) -> dict:
        source = pair["pooled"] if self.features == "equivariant" else pair["features"]
        x = ops.concatenate([source["v1"], source["v2"]], axis=-1)
        y = ops.cast(self.head(x, training=training), "float32")
        return dict(
            parameter_regression(
                self._split_outputs(y), self._targets(pair["batch"]), self.specs, standardize=self.standardize
            )
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "targets": list(self.targets),
            "mode": self.mode,
            "hidden_units": list(self.hidden_units),
            "features": self.features,
            "standardize": self.standardize,
            "synchronized": self.synchronized,
        }
