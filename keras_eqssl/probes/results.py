"""The one results format of the probes, the report and the plots, and every name they share.

A probe returns a flat list of `Score`s. Each `Score` is one figure of one probe, named by
`(probe, target, part, head, metric, dim)`, with its value in each **repeat** of the probe (a
repeat re-draws the probe's training sample and resamples its test groups, objects or photos,
with replacement; see each probe). The report prints `mean ± std` over the repeats, and
`compare` says whether two figures differ beyond the noise.

    Score(probe="3diebench", target="rotation", part="equivariant", head="linear", metric="r2",
          dim="", values=(0.31, 0.28, 0.33))

Names (this module is the only place that defines them):

- `PROBES`: "3diebench" (relative rotation and colour from a pair of renders, SIE's protocol),
  "params" (augmentation parameters from `[f(I), f(g(I))]`, the flagship paper's protocol) and
  "classification".
- `PARTS`: which slice of the representation was probed ("embedding", "invariant", "equivariant").
- `REGRESSION_HEADS` / `CLASSIFIERS`: "constant" (the train mean, or the most frequent class: the
  row every figure must beat), "linear" (ridge regression or one-hot ridge classifier, penalty chosen by grouped
  cross-validation), "mlp" (early-stopped on held-out groups) and "knn".
- `THREEDIE_TARGETS`, `FAMILIES`: the regression targets and their components; `TARGETS`: every
  target (with "class") in report order.
- `METRICS`: "r2" (sklearn's R², mean over the target's components, or one component when `dim`
  is set), "r2_global" (SIE's global-mean R², see `keras_eqssl.probes.r2`) and "top1".

Only NumPy: importing this module loads neither TensorFlow nor matplotlib.

Example:
>>> a = Score("params", "rotation", "equivariant", "linear", "r2", values=(0.52, 0.55, 0.50))
>>> b = Score("params", "rotation", "equivariant", "constant", "r2", values=(-0.01, 0.0, -0.02))
>>> f"{a.mean:.3f} ± {a.std:.3f}"
'0.523 ± 0.025'
>>> compare(a, b).beyond_noise
True
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

PROBES = ("3diebench", "params", "classification")
PARTS = ("embedding", "invariant", "equivariant")
REGRESSION_HEADS = ("constant", "linear", "mlp")
CLASSIFIERS = ("constant", "linear", "knn")
HEADS = ("constant", "linear", "mlp", "knn")
PROBE_HEADS = ("linear", "mlp")  # the heads a regression probe trains (the constant row is always added)
METRICS = ("r2", "r2_global", "top1")

# 3DIEBench target -> (batch / latent key, component names)
THREEDIE_TARGETS = {
    "rotation": ("rel_rotation", ("qx", "qy", "qz", "qw")),
    "color": ("rel_color", ("floor_hue", "light_hue")),
}
FAMILIES = ("rotation", "color", "blur", "translation", "all")
# Families beyond the paper's protocol, asked for by name (not in the default `FAMILIES`).
EXTRA_FAMILIES = ("crop",)
KNOWN_FAMILIES = (*FAMILIES, *EXTRA_FAMILIES)
CLASS_TARGET = "class"
TARGETS = (*THREEDIE_TARGETS, *(f for f in KNOWN_FAMILIES if f not in THREEDIE_TARGETS), CLASS_TARGET)
"""Every target, in report order."""

LABELS = {
    "3diebench": "3DIEBench",
    "params": "augmentation parameters",
    "classification": "classification",
    "rotation": "rotation",
    "color": "colour",
    "blur": "blur",
    "translation": "translation",
    "all": "all combined",
    "class": "class",
    "r2": "R²",
    "r2_global": "R² (SIE global mean)",
    "top1": "top-1",
}

NOISE_SIGMAS = 2.0
"""A difference is beyond the noise when |mean| > NOISE_SIGMAS x its standard deviation (see `compare`)."""


def label(name: str) -> str:
    """The human name of a probe, target or metric (the name itself when it has none)."""
    return LABELS.get(name, name)


class Repeated:
    """Mean, spread and text of a figure measured several times (a `values` tuple, one per repeat or seed)."""

    values: tuple

    @property
    def mean(self) -> float:
        """Mean over the repeats."""
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        """Sample standard deviation over the repeats (0.0 for one repeat)."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def text(self, decimals: int = 3) -> str:
        """`"0.523 ± 0.025"` (no ± for a single repeat)."""
        if len(self.values) == 1:
            return f"{self.mean:.{decimals}f}"
        return f"{self.mean:.{decimals}f} ± {self.std:.{decimals}f}"


@dataclasses.dataclass(frozen=True)
class Score(Repeated):
    """One figure of one probe over its repeats.

    Attributes:
        probe: one of `PROBES`.
        target: a `THREEDIE_TARGETS` key, a parameter family, or "class".
        part: one of `PARTS`.
        head: one of `HEADS`.
        metric: one of `METRICS`.
        values: the figure in each repeat (at least one).
        dim: "" for the whole target, or one component ("qx", "rotation", "tx", ...).
    """

    probe: str
    target: str
    part: str
    head: str
    metric: str
    values: tuple = ()
    dim: str = ""

    def __post_init__(self):
        values = tuple(float(v) for v in np.asarray(self.values, dtype=np.float64).ravel())
        if not values:
            raise ValueError(f"Score {self.key}: needs at least one value.")
        object.__setattr__(self, "values", values)
        if self.probe not in PROBES:
            raise ValueError(f"Score: unknown probe {self.probe!r}; known: {PROBES}.")
        if self.part not in PARTS:
            raise ValueError(f"Score: unknown part {self.part!r}; known: {PARTS}.")
        if self.head not in HEADS:
            raise ValueError(f"Score: unknown head {self.head!r}; known: {HEADS}.")
        if self.metric not in METRICS:
            raise ValueError(f"Score: unknown metric {self.metric!r}; known: {METRICS}.")

    @property
    def key(self) -> tuple[str, ...]:
        """`(probe, target, part, head, metric, dim)`: what the figure is."""
        return (self.probe, self.target, self.part, self.head, self.metric, self.dim)

    def to_json(self) -> dict:
        """The fields as a dict, `values` as a list of floats."""
        out = dataclasses.asdict(self)
        out["values"] = list(self.values)
        return out


@dataclasses.dataclass(frozen=True)
class Difference:
    """`a - b` of two `Score`s: the mean difference, its spread, and whether it is beyond the noise.

    Paired (same number of repeats, repeat r of both drawn with the same seed): the spread is the
    standard deviation of the per-repeat differences. Otherwise: sqrt(std_a² + std_b²).
    """

    delta: float
    std: float
    paired: bool

    @property
    def beyond_noise(self) -> bool:
        """|delta| > NOISE_SIGMAS x std."""
        return abs(self.delta) > NOISE_SIGMAS * self.std

    def text(self, decimals: int = 3) -> str:
        """`"+0.120 *"`: the signed delta, with ` *` when beyond the noise."""
        mark = " *" if self.beyond_noise else ""
        return f"{self.delta:+.{decimals}f}{mark}"


def compare(a: Score, b: Score) -> Difference:
    """`a - b`, paired when both have the same number (>= 2) of repeats (see `Difference`)."""
    if len(a.values) == len(b.values) and len(a.values) > 1:
        d = np.subtract(a.values, b.values)
        return Difference(float(d.mean()), float(np.std(d, ddof=1)), True)
    return Difference(a.mean - b.mean, math.hypot(a.std, b.std), False)


def pick(scores: Iterable[Score], **where: str) -> list[Score]:
    """The scores whose fields equal `where` (e.g. `pick(s, probe="params", head="linear")`).

    `dim` defaults to "" (whole targets); pass `dim=None` for every component too.
    """
    where = {"dim": "", **where}
    if where["dim"] is None:
        del where["dim"]
    unknown = set(where) - {f.name for f in dataclasses.fields(Score)}
    if unknown:
        raise ValueError(f"pick: unknown fields {sorted(unknown)}.")
    return [s for s in scores if all(getattr(s, k) == v for k, v in where.items())]


def one(scores: Iterable[Score], **where: str) -> Score | None:
    """The single score matching `where` (see `pick`), None if there is none."""
    found = pick(scores, **where)
    if len(found) > 1:
        raise ValueError(f"one: {len(found)} scores match {where}.")
    return found[0] if found else None


def ordered(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """Distinct `names`, those in `known` first in its order, then the others in first-seen order."""
    names = list(dict.fromkeys(names))
    return [n for n in known if n in names] + [n for n in names if n not in known]


@dataclasses.dataclass
class ModelResults:
    """Everything measured about one model: its scores and free-form information.

    Attributes:
        scores: the probes' `Score`s.
        info: JSON-able facts (training steps and seconds, final losses, data description, the
            probes' settings, reasons a probe was skipped).
    """

    scores: list = dataclasses.field(default_factory=list)
    info: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        """`{"scores": [Score.to_json()], "info": info}`, strict-JSON-able (NaN and Inf as None)."""
        return {"scores": [_jsonable(s.to_json()) for s in self.scores], "info": _jsonable(self.info)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelResults:
        """The inverse of `to_json` (a None value becomes NaN)."""
        return cls([Score(**{**s, "values": tuple(s["values"])}) for s in data.get("scores", [])], dict(data["info"]))


def write_metrics(results: Mapping[str, ModelResults], path) -> str:
    """`{model: ModelResults}` as strict JSON (NaN and Inf become null; a null value reads back as NaN)."""
    text = json.dumps({name: r.to_json() for name, r in results.items()}, indent=1, allow_nan=False)
    with open(path, "w") as f:
        f.write(text + "\n")
    return str(path)


def read_metrics(path) -> dict[str, ModelResults]:
    """The inverse of `write_metrics`."""
    with open(path) as f:
        data = json.load(f)
    return {name: ModelResults.from_json(r) for name, r in data.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclasses.dataclass(frozen=True)
class KeyMetric:
    """One headline figure: a column of the key table, and where it comes from.

    Attributes:
        name: short column name.
        where: `pick` filters that select one score; the first of `heads` / `parts` that a model
            has is used.
    """

    name: str
    probe: str
    target: str
    metric: str
    parts: tuple = ("embedding",)
    heads: tuple = ("linear",)

    def find(self, scores: Sequence[Score]) -> Score | None:
        """This metric's score among one model's `scores` (first matching part, then head), or None."""
        for part in self.parts:
            for head in self.heads:
                found = one(scores, probe=self.probe, target=self.target, metric=self.metric, part=part, head=head)
                if found is not None:
                    return found
        return None


KEY_METRICS = (
    KeyMetric("3DIE rotation R²", "3diebench", "rotation", "r2", parts=("equivariant", "embedding")),
    KeyMetric("3DIE colour R²", "3diebench", "color", "r2", parts=("equivariant", "embedding")),
    KeyMetric("params rotation R² (equi)", "params", "rotation", "r2", parts=("equivariant",)),
    KeyMetric("params rotation R² (inv)", "params", "rotation", "r2", parts=("invariant",)),
    KeyMetric("params all R² (equi)", "params", "all", "r2", parts=("equivariant", "embedding")),
    KeyMetric("linear top-1", "classification", "class", "top1", parts=("invariant", "embedding")),
    KeyMetric("kNN top-1", "classification", "class", "top1", parts=("invariant", "embedding"), heads=("knn",)),
)
"""The key table's columns: linear heads, the part each figure is about (equivariant for the
transformations, invariant for the class)."""


def key_numbers(
    results: Mapping[str, ModelResults], metrics: Sequence[KeyMetric] = KEY_METRICS
) -> dict[str, dict[str, Score]]:
    """`{model: {KeyMetric.name: Score}}` for the `metrics` each model has."""
    out = {}
    for name, r in results.items():
        out[name] = {k.name: s for k in metrics if (s := k.find(r.scores)) is not None}
    return out


def key_constants(
    results: Mapping[str, ModelResults], baseline: str | None = None, metrics: Sequence[KeyMetric] = KEY_METRICS
) -> dict[str, Score]:
    """`{KeyMetric.name: Score}` of the constant predictor for each of `metrics`.

    The same figure as the key metric with head="constant", taken from `baseline`'s scores, else
    from the first model that has it.
    """
    order = ([baseline] if baseline in results else []) + [m for m in results if m != baseline]
    out = {}
    for k in metrics:
        constant = dataclasses.replace(k, heads=("constant",))
        for model in order:
            found = constant.find(results[model].scores)
            if found is not None:
                out[k.name] = found
                break
    return out


def key_differences(
    results: Mapping[str, ModelResults], baseline: str, metrics: Sequence[KeyMetric] = KEY_METRICS
) -> dict[str, dict[str, Difference]]:
    """`{model: {KeyMetric.name: compare(model's score, baseline's score)}}` for every model but
    `baseline`, over the `metrics` both have. Raises ValueError for an unknown `baseline`."""
    if baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not one of the models {list(results)}.")
    numbers = key_numbers(results, metrics)
    base = numbers[baseline]
    return {
        model: {name: compare(score, base[name]) for name, score in row.items() if name in base}
        for model, row in numbers.items()
        if model != baseline
    }


def merge_seeds(runs: Sequence[ModelResults]) -> ModelResults:
    """One model trained with several seeds, as one `ModelResults` whose repeats are the seeds.

    Each merged `Score` holds one value per run (in the order of `runs`): that run's mean over
    its probe repeats. So `mean ± std` is over training seeds, and `compare` of two merged models
    whose runs are listed in the same seed order is paired by seed. Scores missing from any run
    are dropped; `info` keeps each run's info under "runs".

    >>> a = ModelResults([Score("params", "rotation", "embedding", "linear", "r2", (0.5, 0.7))])
    >>> b = ModelResults([Score("params", "rotation", "embedding", "linear", "r2", (0.2, 0.2))])
    >>> merge_seeds([a, b]).scores[0].values
    (0.6, 0.2)
    """
    if not runs:
        raise ValueError("merge_seeds: needs at least one run.")
    keyed = [{s.key: s for s in r.scores} for r in runs]
    common = [k for k in keyed[0] if all(k in other for other in keyed[1:])]
    scores = [dataclasses.replace(keyed[0][k], values=tuple(round(d[k].mean, 12) for d in keyed)) for k in common]
    return ModelResults(scores, {"runs": [r.info for r in runs]})
