"""CIPER / AugSelf: an MLP on both views' features predicts the augmentation parameters of the pair."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import keras
from keras import ops

from keras_eqssl.augment.base import ParamSpec
from keras_eqssl.losses.parameter_regression import parameter_regression
from keras_eqssl.methods.context import RELATIVE_SPECS
from keras_eqssl.methods.objectives.base import TOTAL, Objective
from keras_eqssl.nn.mlp import MLP

MODES = ("pair", "difference")
FEATURES = ("equivariant", "all")
HEADS = ("shared", "per_target")
CROP_TARGETS = ("box", "center")
ACTIVATIONS = ("linear", "tanh")
REDUCTIONS = ("sum", "mean")
VIEWS = ("v1", "v2")


def _relative(spec: ParamSpec, w1, w2):
    """AugSelf's parameter difference: w1 - w2, xor for binary, (w1 - w2) mod C for categorical."""
    if spec.kind == "continuous":
        return ops.cast(w1, "float32") - ops.cast(w2, "float32")
    if spec.kind == "binary":
        return ops.cast(ops.not_equal(w1, w2), "float32")
    return ops.mod(ops.cast(w1, "int32") - ops.cast(w2, "int32"), spec.num_classes)


def _crop_centre_difference(box_a, box_b, flip_a):
    """AugSelf's crop target (`extract_diff`) for the order (a, b), boxes `(B, 4)` = (y0, x0, h, w), normalised.

    `[cy_a - cy_b, s_a (cx_a - cx_b), h_a - h_b, w_a - w_b]` with c = corner + size / 2 and
    s_a = -1 where view a was mirrored: AugSelf mirrors both centres (x -> 1 - x) by the FIRST
    view's flip, so the x difference is read in view a's frame.
    """
    box_a, box_b = ops.cast(box_a, "float32"), ops.cast(box_b, "float32")
    centre = (box_a[:, :2] + box_a[:, 2:] / 2) - (box_b[:, :2] + box_b[:, 2:] / 2)
    sign = 1.0 - 2.0 * ops.cast(ops.reshape(flip_a, (-1,)) > 0.5, "float32")
    return ops.stack([centre[:, 0], sign * centre[:, 1], box_a[:, 2] - box_b[:, 2], box_a[:, 3] - box_b[:, 3]], 1)


def jitter_widths(jitter) -> list[float]:
    """AugSelf's colour scales: the width of each jitter factor's range (brightness 0.4 -> 0.8, hue 0.1 -> 0.2).

    `jitter`: a mapping with `brightness`, `contrast`, `saturation`, `hue` as `ColorJitter` takes them.
    """
    from keras_eqssl.augment.color import ColorJitter

    op = ColorJitter(**{k: jitter[k] for k in ("brightness", "contrast", "saturation", "hue")})
    return [float(hi - lo) for lo, hi in op.ranges]


def parse_target_scales(text: str, config=None) -> dict[str, list[float]] | None:
    """`"color=0.8/0.8/0.8/0.2,crop=1"` -> `{"color": [...], "crop": [1.0]}`; `""` -> None.

    `"jitter"` means `{"color": jitter_widths(config.augment.jitter)}` (AugSelf's colour scaling).
    """
    text = text.strip()
    if not text:
        return None
    if text == "jitter":
        if config is None:
            raise ValueError(
                "ParameterPrediction: target_scales='jitter' needs the run config (config.augment.jitter)."
            )
        return {"color": jitter_widths(config.augment.jitter)}
    out = {}
    for item in text.split(","):
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"ParameterPrediction: target_scales must read 'key=a/b/...,key2=c'; received {text!r}")
        out[key.strip()] = [float(v) for v in values.split("/")]
    return out


@keras.saving.register_keras_serializable(package="keras_eqssl")
class ParameterPrediction(Objective):
    """Predicts recorded augmentation parameters (or 3DIEBench's relative pose) from a pair of views.

    CIPER (Xu & Triesch, arXiv 2302.02330, re-implemented after trieschlab/AASSL `ciper.py`):
    `MLP(concat[f(x1), f(x2)])` regresses the parameters, batch-standardised, with MSE; binary
    ones use BCE and categorical ones cross-entropy (`keras_eqssl.losses.parameter_regression`).
    AugSelf (Lee et al., NeurIPS 2021, hankook/AugSelf) is `mode="difference"` with its options:
    `heads="per_target"`, `symmetric=True`, `crop_target="center"`, `target_scales` of the
    jitter ranges, `standardize=False` and `output_activation="tanh"` (`configs/augself.py`).

    Targets:
    - a key the policy records (`"crop"`, `"color"`, `"flip"`, ...): with `mode="pair"` (CIPER)
      the head predicts both views' values (`"v1_crop"`, `"v2_crop"`); with `mode="difference"`
      (AugSelf) the difference w1 - w2 (xor for binary, (k1 - k2) mod C for categorical), as `"crop"`;
    - `"rel_rotation"` (quaternion, 4) and `"rel_color"` (2): 3DIEBench's relative targets, read
      from the batch's top level (CIPER's "action").

    For views with features f1, f2 `(B, d)` the head sees `concat[f1, f2]` `(B, 2d)`; with
    `symmetric=True` also `concat[f2, f1]` with the targets of the reversed pair (w2 - w1, or the
    views' values swapped), stacked into `(2B, 2d)`, as AugSelf's `SSObjective`.

    Args:
        targets: list of target keys (see above).
        weight: the loss weight.
        mode: `"pair"` or `"difference"`.
        hidden_units: hidden layers of the MLP head (AASSL: one of 1024; AugSelf: 512-512).
        features: `"equivariant"` (the split's equivariant part) or `"all"` (the whole vector).
        standardize: batch-standardise continuous targets (CIPER/AASSL: BatchNorm1d(affine=False)).
        heads: `"shared"`, one MLP whose output is split by target, or `"per_target"`, one MLP per
            predicted key (AugSelf's `load_ss_predictor`).
        symmetric: also predict the reversed pair (AugSelf).
        crop_target: with `mode="difference"`, the `"crop"` target: `"box"`, the difference of the
            recorded boxes (y0, x0, h, w); `"center"`, AugSelf's (centre y, centre x, h, w)
            difference with the x difference mirrored where the first view is flipped (needs `flip`).
        target_scales: key -> one scale per component (or one for all); continuous targets are
            divided by it before any standardisation (AugSelf's colour: the jitter ranges' widths).
            A string `"color=0.8/0.8/0.8/0.2"` is parsed (`parse_target_scales`).
        output_activation: `"linear"` or `"tanh"` on the continuous predictions (AugSelf: tanh).
        reduction: the total over keys: `"sum"` of the per-key means (AugSelf: one loss per
            augmentation, summed) or `"mean"` over every predicted component, i.e. the per-key
            means weighted by their sizes (CIPER/AASSL: one MSE over the whole action vector).
        synchronized: synchronised BatchNorm in the head.

    Returns (call): `{"total", <one per predicted key>}`.
    """

    short_name = "params"
    choices = {
        "mode": MODES,
        "features": FEATURES,
        "heads": HEADS,
        "crop_target": CROP_TARGETS,
        "output_activation": ACTIVATIONS,
        "reduction": REDUCTIONS,
    }
    # targets "auto": what the data source provides (`auto_targets`); a 256-unit hidden layer;
    # target_scales "": none ("jitter": the widths of config.augment.jitter's ranges, for "color").
    config_defaults = {"targets": "auto", "hidden_units": "256", "target_scales": ""}

    def __init__(
        self,
        targets=("crop", "color"),
        weight: float = 1.0,
        mode: str = "pair",
        hidden_units=(1024,),
        features: str = "equivariant",
        standardize: bool = True,
        heads: str = "shared",
        symmetric: bool = False,
        crop_target: str = "box",
        target_scales: Mapping[str, float | Sequence[float]] | str | None = None,
        output_activation: str = "linear",
        reduction: str = "sum",
        synchronized: bool = False,
        **kwargs,
    ):
        super().__init__(weight=weight, **kwargs)
        if isinstance(targets, str):
            targets = [targets]
        self.targets = [str(t) for t in targets]
        if not self.targets:
            raise ValueError("ParameterPrediction: give at least one target key.")
        self.check_choices(
            mode=mode,
            features=features,
            heads=heads,
            crop_target=crop_target,
            output_activation=output_activation,
            reduction=reduction,
        )
        if crop_target == "center" and mode != "difference":
            raise ValueError(
                "ParameterPrediction: crop_target='center' is AugSelf's difference target; use mode='difference'."
            )
        if isinstance(target_scales, str):
            target_scales = parse_target_scales(target_scales)
        scales = {}
        for key, value in dict(target_scales or {}).items():
            values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
            if not values or not all(v > 0 for v in values):
                raise ValueError(
                    f"ParameterPrediction: target_scales[{key!r}] must be positive numbers; received {value!r}"
                )
            scales[str(key)] = values
        self.mode = mode
        self.hidden_units = [int(u) for u in hidden_units]
        self.features = features
        self.standardize = bool(standardize)
        self.heads = heads
        self.symmetric = bool(symmetric)
        self.crop_target = crop_target
        self.target_scales = scales
        self.output_activation = output_activation
        self.reduction = reduction
        self.synchronized = bool(synchronized)
        self.head = None
        self.target_heads: list[MLP] = []

    @classmethod
    def arguments_from_config(cls, section, config) -> dict:
        args = super().arguments_from_config(section, config)
        targets = args["targets"]
        if isinstance(targets, str):
            args["targets"] = auto_targets(config) if targets == "auto" else [t.strip() for t in targets.split(",")]
            args["targets"] = [t for t in args["targets"] if t]
        if isinstance(args.get("target_scales"), str):
            args["target_scales"] = parse_target_scales(args["target_scales"], config)
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
                if self.symmetric:
                    raise ValueError(
                        f"ParameterPrediction: symmetric=True reverses the pair, which the relative target {key!r} "
                        "does not record; predict augmentation parameters, or set symmetric=False."
                    )
                self.specs[key], self.sources[key] = RELATIVE_SPECS[key], (key, None)
            elif key in recorded:
                if self.mode == "pair":
                    for view in VIEWS:
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
        if self.crop_target == "center" and "crop" in self.specs:
            if self.specs["crop"].shape != (4,) or "flip" not in recorded:
                raise ValueError(
                    "ParameterPrediction: crop_target='center' needs the (y0, x0, h, w) crop box and the `flip` "
                    f"parameter recorded for both views; the policy records {sorted(recorded)}."
                )
        for key, values in self.target_scales.items():
            spec = self.specs.get(key)
            if spec is None or spec.kind != "continuous":
                raise ValueError(
                    f"ParameterPrediction: target_scales names {key!r}, which is not a predicted continuous target; "
                    f"predicted: {sorted(self.specs)}."
                )
            if len(values) not in (1, math.prod(spec.shape)):
                raise ValueError(
                    f"ParameterPrediction: target_scales[{key!r}] has {len(values)} values; give 1 or "
                    f"{math.prod(spec.shape)} (one per component of {spec.shape})."
                )
        self._widths = {key: self._width(spec) for key, spec in self.specs.items()}
        in_dim = context.equivariant_dim if self.features == "equivariant" else context.feature_dim
        if self.heads == "shared":
            self.head = self._mlp(sum(self._widths.values()), "head")
            self.head.build((None, 2 * in_dim))
        else:
            self.target_heads = [self._mlp(width, f"head_{key}") for key, width in self._widths.items()]
            for head in self.target_heads:
                head.build((None, 2 * in_dim))

    @staticmethod
    def _width(spec: ParamSpec) -> int:
        m = math.prod(spec.shape)
        return m * spec.num_classes if spec.kind == "categorical" else m

    def _mlp(self, width: int, name: str) -> MLP:
        return MLP([*self.hidden_units, width], synchronized=self.synchronized, name=name, dtype=self.dtype_policy)

    def term_names(self) -> list[str]:
        return [TOTAL, *self.specs]

    def _predict(self, x, training=None) -> dict:
        """Head outputs per key, float32; `tanh` on continuous ones when `output_activation="tanh"`."""
        if self.heads == "shared":
            out = self._split_outputs(ops.cast(self.head(x, training=training), "float32"))
        else:
            out = {
                key: ops.cast(head(x, training=training), "float32") for key, head in zip(self.specs, self.target_heads)
            }
        if self.output_activation == "tanh":
            out = {k: ops.tanh(v) if self.specs[k].kind == "continuous" else v for k, v in out.items()}
        return out

    def _split_outputs(self, y) -> dict:
        out, start = {}, 0
        for key, width in self._widths.items():
            out[key] = y[:, start : start + width]
            start += width
        return out

    def _targets(self, batch: dict, order: tuple[str, str] = VIEWS) -> dict:
        """The targets for the pair in `order` (`("v2", "v1")`: the reversed pair of `symmetric`)."""
        first, second = order
        view_of = dict(zip(VIEWS, order))  # the pair's "v1" slot reads view `first`
        out = {}
        for key, (target, view) in self.sources.items():
            if view is None:
                if target not in batch:
                    raise ValueError(f"ParameterPrediction: the batch has no {target!r} (a 3DIEBench pair target).")
                out[key] = batch[target]
                continue
            params = batch.get("params")
            if not params or any(target not in params.get(v, {}) for v in VIEWS):
                raise ValueError(f"ParameterPrediction: the batch records no params[v][{target!r}] for both views.")
            if view == "diff" and key == "crop" and self.crop_target == "center":
                if any("flip" not in params[v] for v in VIEWS):
                    raise ValueError(
                        "ParameterPrediction: crop_target='center' needs params[v]['flip'] for both views."
                    )
                t = _crop_centre_difference(params[first][target], params[second][target], params[first]["flip"])
            elif view == "diff":
                t = _relative(self.specs[key], params[first][target], params[second][target])
            else:
                t = params[view_of[view]][target]
            if key in self.target_scales:
                t = ops.cast(t, "float32") / ops.convert_to_tensor(self.target_scales[key], "float32")
            out[key] = t
        return out

    def _weights(self) -> dict | None:
        if self.reduction == "sum":
            return None
        sizes = {key: math.prod(spec.shape) for key, spec in self.specs.items()}
        total = sum(sizes.values())
        return {key: size / total for key, size in sizes.items()}

    def call(self, pair: dict, training=None) -> dict:
        source = pair["equivariant"] if self.features == "equivariant" else pair["features"]
        f1, f2 = source["v1"], source["v2"]
        x = ops.concatenate([f1, f2], axis=-1)
        targets = self._targets(pair["batch"])
        if self.symmetric:
            x = ops.concatenate([x, ops.concatenate([f2, f1], axis=-1)], axis=0)
            reverse = self._targets(pair["batch"], order=("v2", "v1"))
            targets = {k: ops.concatenate([targets[k], reverse[k]], axis=0) for k in targets}
        return dict(
            parameter_regression(
                self._predict(x, training=training),
                targets,
                self.specs,
                weights=self._weights(),
                standardize=self.standardize,
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
            "heads": self.heads,
            "symmetric": self.symmetric,
            "crop_target": self.crop_target,
            "target_scales": {k: list(v) for k, v in self.target_scales.items()},
            "output_activation": self.output_activation,
            "reduction": self.reduction,
            "synchronized": self.synchronized,
        }


def auto_targets(config) -> list[str]:
    """The targets `"auto"` means for a run config: what its data source provides."""
    if config.data.source == "threedie" and not config.data.threedie.augment_renders:
        return ["rel_rotation", "rel_color"]
    return ["crop", "color"]
