"""A Markdown report, a JSON file and plots from probe results: plain dicts and NumPy arrays in, files out.

This module trains nothing and imports neither TensorFlow nor Keras; matplotlib is loaded only when
a plot is drawn (by `keras_eqssl.probes.plots`). The probes fill in a results dict, this module
writes it down.

The results format (every section optional, unknown sections are kept in `metrics.json` and
otherwise ignored; `None` means "not measured", NaN means "measured and undefined")::

    results = {
        "<model name>": {
            "threedie": {                     # SIE protocol on 3DIEBench pairs
                "<head>": {                   # "linear" | "mlp"
                    "<part>": {               # "embedding" | "invariant" | "equivariant"
                        "rel_rotation": {"r2_per_dim": [qx, qy, qz, qw], "r2_mean": float,
                                         "r2_global_mean": float},  # the last one optional
                        "rel_color": {"r2_per_dim": [floor_hue, light_hue], "r2_mean": float},
                    }}},
            "params": {                       # augmentation-parameter regression
                "<head>": {"<family>": {"<param name>": r2}}},  # family: see PARAM_FAMILIES
            "classification": {"linear_top1": float, "knn_top1": float},
            "train": {"steps": int, "seconds": float, "final_losses": {"<loss name>": float}},
        },
    }

`r2_mean` is the mean of the per-dim R² (sklearn's default); `r2_global_mean`, when the probe
records it, is SIE's R² over all elements at once (see `keras_eqssl.probes.r2`), the number to
compare with published 3DIEBench results. The key numbers (`key_numbers`, `KEY_METRICS`) pick one
(head, part, statistic) per number, preferring `KEY_HEADS`, `KEY_PARTS` and `KEY_STATISTICS` in
order; `key_sources` says which was picked.

Example:
    >>> results = {"simclr": {"classification": {"linear_top1": 0.61, "knn_top1": 0.55}}}
    >>> key_numbers(results)
    {'simclr': {'linear_top1': 0.61, 'knn_top1': 0.55}}
    >>> paths = write_report(results, "runs/probe", title="SimCLR probes")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['metrics', 'report']
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

# --------------------------------------------------------------------------------------------------
# The results format
# --------------------------------------------------------------------------------------------------

SECTIONS = ("threedie", "params", "classification", "train")
"""The sections a model's results may have, in report order."""

PROBES = ("threedie", "params")
"""The sections holding R² scores per head (the ones `plots.r2_bars` draws)."""

HEADS = ("linear", "mlp")
"""Known probe heads (others are accepted and listed after these)."""

PARTS = ("embedding", "invariant", "equivariant")
"""Known representation parts for the SIE protocol: the whole embedding or one side of the split."""

THREEDIE_TARGETS: dict[str, tuple[str, ...]] = {
    "rel_rotation": ("qx", "qy", "qz", "qw"),
    "rel_color": ("floor_hue", "light_hue"),
}
"""SIE targets and the names of their dims (as `keras_eqssl.methods.context.RELATIVE_SPECS`)."""

TARGET_LABELS = {"rel_rotation": "rotation", "rel_color": "colour"}

PARAM_FAMILIES = (
    "rotation", "color", "brightness", "contrast", "saturation", "hue", "blur", "translation", "all",
)  # fmt: skip
"""Known augmentation families, in report order; "all" is one probe regressing every parameter jointly.
("color" is `keras_eqssl.probes.param_probe`'s jitter family: brightness, contrast, saturation, hue.)"""

CLASSIFICATION_METRICS = ("linear_top1", "knn_top1")

KEY_HEADS = ("mlp", "linear")
"""Head preference for the key numbers (SIE reports its rotation R² with an MLP predictor)."""

KEY_PARTS = ("embedding", "equivariant", "invariant")
"""Part preference for the key numbers: the whole representation first."""

KEY_STATISTICS = ("r2_global_mean", "r2_mean")
"""Statistic preference for the SIE key numbers: SIE's global-mean R², else the per-dim mean."""

MISSING = "–"
"""What a table shows for a number that was not measured."""


class TargetR2(TypedDict, total=False):
    """R² of one SIE target: per dim (sklearn's `multioutput="raw_values"`), their mean, and
    optionally SIE's global-mean R² (`keras_eqssl.probes.r2.r2_global_mean`)."""

    r2_per_dim: list[float]
    r2_mean: float
    r2_global_mean: float


class ClassificationResults(TypedDict, total=False):
    """Top-1 accuracies in [0, 1]."""

    linear_top1: float
    knn_top1: float


class TrainResults(TypedDict, total=False):
    """How the model was trained: optimizer steps, wall seconds, last value of each loss term."""

    steps: int
    seconds: float
    final_losses: dict[str, float]


ThreeDieResults = dict[str, dict[str, dict[str, TargetR2]]]
"""head -> part -> target ("rel_rotation" | "rel_color") -> `TargetR2`."""

ParamsResults = dict[str, dict[str, dict[str, float]]]
"""head -> family -> parameter name -> R²."""


class ModelResults(TypedDict, total=False):
    """One model's results; every section is optional."""

    threedie: ThreeDieResults
    params: ParamsResults
    classification: ClassificationResults
    train: TrainResults


Results = dict[str, ModelResults]
"""model name -> `ModelResults`, in the order the report lists the models."""


@dataclasses.dataclass(frozen=True)
class KeyMetric:
    """One key number: its `key_numbers` key, its table header and its kind ("r2", "accuracy", "seconds")."""

    key: str
    label: str
    kind: str


KEY_METRICS = (
    KeyMetric("rotation_r2", "rotation R²", "r2"),
    KeyMetric("colour_r2", "colour R²", "r2"),
    *(KeyMetric(f"params_r2_{family}", f"params R² {family}", "r2") for family in PARAM_FAMILIES),
    KeyMetric("linear_top1", "linear top-1", "accuracy"),
    KeyMetric("knn_top1", "kNN top-1", "accuracy"),
    KeyMetric("train_seconds", "train time", "seconds"),
)
"""Every key number in table order. `params_r2_<family>` also exists for families not listed here."""


def check_results(results: Mapping[str, Any]) -> None:
    """Raises ValueError naming the first place where `results` does not follow the format.

    Numbers may be Python or NumPy numbers, NaN or None; lists may be NumPy arrays; a section may be
    None (as if absent).

    Example:
        >>> check_results({"m": {"params": {"linear": {"blur": {"sigma": 0.9}}}}})
        >>> check_results({"m": {"params": {"linear": {"blur": 0.9}}}})
        Traceback (most recent call last):
        ...
        ValueError: results['m']['params']['linear']['blur']: expected a mapping, got float
    """
    _mapping(results, "results")
    for model, sections in results.items():
        where = f"results[{model!r}]"
        if not isinstance(model, str):
            raise ValueError(f"{where}: model names must be strings")
        _mapping(sections, where)
        if sections.get("threedie") is not None:
            for head, parts in _mapping(sections["threedie"], f"{where}['threedie']").items():
                for part, targets in _mapping(parts, f"{where}['threedie'][{head!r}]").items():
                    at = f"{where}['threedie'][{head!r}][{part!r}]"
                    for target, scores in _mapping(targets, at).items():
                        at_t = f"{at}[{target!r}]"
                        _mapping(scores, at_t)
                        for stat in KEY_STATISTICS:
                            if stat in scores:
                                _number(scores[stat], f"{at_t}[{stat!r}]")
                        if "r2_per_dim" in scores and scores["r2_per_dim"] is not None:
                            for i, value in enumerate(np.asarray(scores["r2_per_dim"], dtype=object).ravel()):
                                _number(value, f"{at_t}['r2_per_dim'][{i}]")
        if sections.get("params") is not None:
            for head, families in _mapping(sections["params"], f"{where}['params']").items():
                for family, params in _mapping(families, f"{where}['params'][{head!r}]").items():
                    at = f"{where}['params'][{head!r}][{family!r}]"
                    for name, value in _mapping(params, at).items():
                        _number(value, f"{at}[{name!r}]")
        for section in ("classification", "train"):
            if sections.get(section) is not None:
                for name, value in _mapping(sections[section], f"{where}[{section!r}]").items():
                    at = f"{where}[{section!r}][{name!r}]"
                    if section == "train" and name == "final_losses":
                        for loss, v in _mapping(value, at).items():
                            _number(v, f"{at}[{loss!r}]")
                    else:
                        _number(value, at)


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> None:
    if value is None or isinstance(value, (int, float, np.integer, np.floating, np.bool_)):
        return
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return
    raise ValueError(f"{where}: expected a number or None, got {type(value).__name__}")


def _float(value: Any) -> float | None:
    """A Python float, or None for None."""
    return None if value is None else float(value)


def ordered(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """`names` without repeats: the known ones in `known` order, then the others in first-seen order.

    Example:
        >>> ordered(["mlp", "probe", "linear", "mlp"], HEADS)
        ['linear', 'mlp', 'probe']
    """
    seen = list(dict.fromkeys(names))
    return [n for n in known if n in seen] + [n for n in seen if n not in known]


def target_mean(scores: Mapping[str, Any], statistic: str = "r2_mean") -> float | None:
    """A target's `r2_mean` (or the mean of its `r2_per_dim` when it is missing), or `r2_global_mean`.

    Returns None when the statistic was not recorded (`r2_global_mean` is never derived).

    Example:
        >>> target_mean({"r2_per_dim": [0.5, 0.7]})
        0.6
        >>> target_mean({"r2_per_dim": [0.5, 0.7]}, "r2_global_mean") is None
        True
    """
    if scores.get(statistic) is not None:
        return float(scores[statistic])
    if statistic != "r2_mean":
        return None
    per_dim = scores.get("r2_per_dim")
    if per_dim is None or np.size(per_dim) == 0:
        return None
    return float(np.round(np.mean(np.asarray(per_dim, dtype=np.float64)), 12))


def dim_names(target: str, n: int) -> tuple[str, ...]:
    """The names of a target's dims: `THREEDIE_TARGETS`' when the count matches, else d0, d1, ..."""
    names = THREEDIE_TARGETS.get(target, ())
    return tuple(names) if len(names) == n else tuple(f"d{i}" for i in range(n))


def family_mean(params: Mapping[str, Any]) -> float | None:
    """The mean R² over one family's parameters (NaN if any is NaN; None if none was measured)."""
    values = [float(v) for v in params.values() if v is not None]
    return float(np.mean(values)) if values else None


# --------------------------------------------------------------------------------------------------
# Key numbers
# --------------------------------------------------------------------------------------------------


def _key_numbers_and_sources(
    sections: Mapping[str, Any], head: str | None, part: str | None
) -> tuple[dict[str, float], dict[str, str]]:
    numbers: dict[str, float] = {}
    sources: dict[str, str] = {}
    threedie = sections.get("threedie") or {}
    heads = [head] if head else ordered(threedie, KEY_HEADS)
    for target, key in (("rel_rotation", "rotation_r2"), ("rel_color", "colour_r2")):
        found = False
        for h in heads:
            parts = threedie.get(h) or {}
            for p in [part] if part else ordered(parts, KEY_PARTS):
                scores = (parts.get(p) or {}).get(target)
                for stat in KEY_STATISTICS if scores is not None else ():
                    value = target_mean(scores, stat)
                    if value is not None:
                        numbers[key], sources[key] = value, f"threedie/{h}/{p}/{target}/{stat}"
                        found = True
                        break
                if found:
                    break
            if found:
                break
    params = sections.get("params") or {}
    heads = [head] if head else ordered(params, KEY_HEADS)
    families = ordered([f for h in heads for f in (params.get(h) or {})], PARAM_FAMILIES)
    for family in families:
        for h in heads:
            values = (params.get(h) or {}).get(family)
            value = None if values is None else family_mean(values)
            if value is not None:
                numbers[f"params_r2_{family}"], sources[f"params_r2_{family}"] = value, f"params/{h}/{family}"
                break
    classification = sections.get("classification") or {}
    for key in CLASSIFICATION_METRICS:
        if classification.get(key) is not None:
            numbers[key], sources[key] = float(classification[key]), f"classification/{key}"
    train = sections.get("train") or {}
    if train.get("seconds") is not None:
        numbers["train_seconds"], sources["train_seconds"] = float(train["seconds"]), "train/seconds"
    return numbers, sources


def key_numbers(
    results: Mapping[str, Any], *, head: str | None = None, part: str | None = None
) -> dict[str, dict[str, float]]:
    """The headline numbers per model, as `{model: {metric key: float}}`; unmeasured ones are absent.

    - `rotation_r2`, `colour_r2`: the R² of `rel_rotation` / `rel_color`: SIE's `r2_global_mean`
      when recorded, else `r2_mean` (else the mean of `r2_per_dim`), from the first head in
      `KEY_HEADS` and part in `KEY_PARTS` that has it (or the given `head` / `part` only).
    - `params_r2_<family>`: the mean R² over the family's parameters, per family; `params_r2_all`
      is the joint probe over every parameter.
    - `linear_top1`, `knn_top1`: from `classification`. `train_seconds`: from `train`.

    Keys follow `KEY_METRICS` order. NaN stays NaN.

    Example:
        >>> r = {"m": {"threedie": {"linear": {"embedding": {"rel_rotation": {"r2_per_dim": [.5, .5, .7, .7],
        ...                                                                    "r2_mean": .6}}}},
        ...            "params": {"linear": {"blur": {"sigma": .8}, "all": {"sigma": .7, "rotation": .5}}}}}
        >>> key_numbers(r)
        {'m': {'rotation_r2': 0.6, 'params_r2_blur': 0.8, 'params_r2_all': 0.6}}
    """
    return {model: _key_numbers_and_sources(sections, head, part)[0] for model, sections in results.items()}


def key_sources(
    results: Mapping[str, Any], *, head: str | None = None, part: str | None = None
) -> dict[str, dict[str, str]]:
    """Where each key number came from, as `{model: {metric key: "threedie/mlp/embedding/rel_rotation"}}`.

    Example:
        >>> key_sources({"m": {"params": {"mlp": {"hue": {"hue": 0.4}}},
        ...                    "threedie": {"mlp": {"embedding": {"rel_color": {"r2_mean": 0.3}}}}}})
        {'m': {'colour_r2': 'threedie/mlp/embedding/rel_color/r2_mean', 'params_r2_hue': 'params/mlp/hue'}}
    """
    return {model: _key_numbers_and_sources(sections, head, part)[1] for model, sections in results.items()}


def key_metrics(numbers: Mapping[str, Mapping[str, float]]) -> list[KeyMetric]:
    """The `KeyMetric`s present in `key_numbers(...)` output for at least one model, in table order."""
    present = list(dict.fromkeys(k for row in numbers.values() for k in row))
    known = [m for m in KEY_METRICS if m.key in present]
    extra_families = [k for k in present if k.startswith("params_r2_") and k not in {m.key for m in KEY_METRICS}]
    extra = [KeyMetric(k, f"params R² {k[len('params_r2_') :]}", "r2") for k in extra_families]
    at = next((i for i, m in enumerate(known) if m.key == "params_r2_all"), None)
    if at is None:
        at = sum(1 for m in known if m.kind == "r2")
    return known[:at] + extra + known[at:]


# --------------------------------------------------------------------------------------------------
# Markdown tables
# --------------------------------------------------------------------------------------------------


def format_number(value: Any, decimals: int = 3, *, signed: bool = False) -> str:
    """A table cell: floats with `decimals` decimals, ints as ints, "nan"/"inf", `MISSING` for None.

    Example:
        >>> [format_number(v) for v in (0.12345, 3, float("nan"), None, "text")]
        ['0.123', '3', 'nan', '–', 'text']
        >>> format_number(0.05, signed=True)
        '+0.050'
    """
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):+d}" if signed else str(int(value))
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def format_seconds(seconds: Any, *, signed: bool = False) -> str:
    """A duration for people: "12.3 s", "4 min 05 s", "2 h 03 min"; `MISSING` for None.

    Example:
        >>> format_seconds(245), format_seconds(7380.0), format_seconds(-3.21, signed=True)
        ('4 min 05 s', '2 h 03 min', '-3.2 s')
    """
    if seconds is None:
        return MISSING
    s = float(seconds)
    if not math.isfinite(s):
        return format_number(s)
    sign = ("+" if s >= 0 else "-") if signed else ("-" if s < 0 else "")
    s = abs(s)
    if s < 60:
        return f"{sign}{s:.1f} s"
    if s < 3600:
        m, r = divmod(int(round(s)), 60)
        return f"{sign}{m} min {r:02d} s"
    h, r = divmod(int(round(s)), 3600)
    return f"{sign}{h} h {r // 60:02d} min"


@dataclasses.dataclass(frozen=True)
class Column:
    """A table column: the row key (or position) it reads, its header, and an optional cell formatter."""

    key: str | int
    header: str | None = None
    fmt: Callable[[Any], str] | None = None
    align: str | None = None  # "left" | "right"; None: right when no cell holds text


def _cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def markdown_table(
    rows: Sequence[Mapping[str, Any] | Sequence[Any]], columns: Sequence[str | Column], *, decimals: int = 3
) -> str:
    """A GitHub-flavoured Markdown table; numeric columns are right-aligned.

    Args:
        rows: mappings (read by column key) or sequences (read by column position).
        columns: keys (also the headers) or `Column`s.
        decimals: decimals for floats (see `format_number`); missing cells show `MISSING`.

    Example:
        >>> print(markdown_table([{"model": "a", "r2": 0.5}, {"model": "b", "r2": float("nan")}], ["model", "r2"]))
        | model |    r2 |
        |:------|------:|
        | a     | 0.500 |
        | b     |   nan |
        >>> print(markdown_table([["a", None]], [Column(0, "model"), Column(1, "top-1")]))
        | model | top-1 |
        |:------|------:|
        | a     |     – |
    """
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    headers = [_cell(str(c.header if c.header is not None else c.key)) for c in cols]
    body: list[list[str]] = []
    numeric = [c.align != "left" for c in cols]
    for row in rows:
        cells = []
        for j, col in enumerate(cols):
            if isinstance(row, Mapping):
                value = row.get(col.key)
            else:
                value = row[col.key] if isinstance(col.key, int) and col.key < len(row) else None
            if isinstance(value, str) and not col.fmt and col.align is None:
                numeric[j] = False
            cells.append(_cell(col.fmt(value) if col.fmt and value is not None else format_number(value, decimals)))
        body.append(cells)
    widths = [max([len(headers[j]), 3] + [len(r[j]) for r in body]) for j in range(len(cols))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if n else (":" + "-" * (w + 1)) for w, n in zip(widths, numeric))
    return "\n".join([line(headers), rule + "|", *(line(r) for r in body)])


def _metric_formatter(metric: KeyMetric, *, signed: bool = False) -> Callable[[Any], str]:
    if metric.kind == "seconds":
        return lambda v: format_seconds(v, signed=signed)
    return lambda v: format_number(v, signed=signed)


def key_numbers_table(results: Mapping[str, Any], *, head: str | None = None, part: str | None = None) -> str:
    """The key numbers as a Markdown table: one row per model, one column per key number measured.

    Example:
        >>> print(key_numbers_table({"m": {"classification": {"knn_top1": 0.5}, "train": {"seconds": 90}}}))
        | model | kNN top-1 | train time |
        |:------|----------:|-----------:|
        | m     |     0.500 | 1 min 30 s |
    """
    numbers = key_numbers(results, head=head, part=part)
    metrics = key_metrics(numbers)
    columns = [Column("model"), *(Column(m.key, m.label, _metric_formatter(m)) for m in metrics)]
    return markdown_table([{"model": model, **row} for model, row in numbers.items()], columns)


def compare_table(results: Mapping[str, Any], baseline: str | None = None, **pick: str | None) -> str:
    """Key numbers side by side (a row per metric, a column per model) plus each model's delta vs `baseline`.

    Args:
        results: the results dict. baseline: the model the deltas are taken against (default: the
            first); no delta columns for a single model. pick: `head=` / `part=` as in `key_numbers`.

    Example:
        >>> r = {"a": {"classification": {"knn_top1": 0.50}}, "b": {"classification": {"knn_top1": 0.62}}}
        >>> print(compare_table(r))
        | metric    |     a |     b | Δ b vs a |
        |:----------|------:|------:|---------:|
        | kNN top-1 | 0.500 | 0.620 |   +0.120 |
    """
    models = list(results)
    if baseline is None and models:
        baseline = models[0]
    if models and baseline not in results:
        raise ValueError(f"baseline {baseline!r} is not one of the models {models}")
    numbers = key_numbers(results, **pick)
    others = [m for m in models if m != baseline] if len(models) > 1 else []
    rows = []
    for metric in key_metrics(numbers):
        row: dict[str, Any] = {"metric": metric.label}
        fmt, fmt_delta = _metric_formatter(metric), _metric_formatter(metric, signed=True)
        for model in models:
            value = numbers[model].get(metric.key)
            row[model] = None if value is None else fmt(value)
        base = numbers.get(baseline, {}).get(metric.key)
        for model in others:
            value = numbers[model].get(metric.key)
            row[f"Δ {model}"] = None if value is None or base is None else fmt_delta(value - base)
        rows.append(row)
    columns = [Column("metric"), *(Column(m, align="right") for m in models)]
    columns += [Column(f"Δ {m}", f"Δ {m} vs {baseline}", align="right") for m in others]
    return markdown_table(rows, columns)


# --------------------------------------------------------------------------------------------------
# Detail tables
# --------------------------------------------------------------------------------------------------


def threedie_tables(results: Mapping[str, Any]) -> dict[str, str]:
    """One Markdown table per SIE target: a row per (model, head, part), a column per dim and the mean.

    A "global mean" column (SIE's `r2_global_mean`) is added when some row recorded it.

    Example:
        >>> r = {"m": {"threedie": {"mlp": {"invariant": {"rel_color": {"r2_per_dim": [0.1, 0.3], "r2_mean": 0.2}}}}}}
        >>> print(threedie_tables(r)["rel_color"])
        | model | head | part      | floor_hue | light_hue |  mean |
        |:------|:-----|:----------|----------:|----------:|------:|
        | m     | mlp  | invariant |     0.100 |     0.300 | 0.200 |
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    dims: dict[str, tuple[str, ...]] = {}
    has_global: set[str] = set()
    for model, sections in results.items():
        threedie = sections.get("threedie") or {}
        for head in ordered(threedie, HEADS):
            parts = threedie[head] or {}
            for part in ordered(parts, PARTS):
                for target, scores in (parts[part] or {}).items():
                    per_dim = scores.get("r2_per_dim")
                    per_dim = [] if per_dim is None else [_float(v) for v in np.asarray(per_dim, dtype=object).ravel()]
                    names = dim_names(target, len(per_dim))
                    if len(names) > len(dims.get(target, ())):
                        dims[target] = names
                    row = {"model": model, "head": head, "part": part, "mean": target_mean(scores),
                           "global mean": target_mean(scores, "r2_global_mean")}  # fmt: skip
                    if row["global mean"] is not None:
                        has_global.add(target)
                    row.update(zip(names, per_dim))
                    rows.setdefault(target, []).append(row)
    tables = {}
    for target in ordered(rows, tuple(THREEDIE_TARGETS)):
        columns = ["model", "head", "part", *dims.get(target, ()), "mean"]
        columns += ["global mean"] if target in has_global else []
        tables[target] = markdown_table(rows[target], columns)
    return tables


def params_table(results: Mapping[str, Any]) -> str:
    """Augmentation-parameter R²: a row per (family, parameter, head), a column per model.

    Each family also gets a "(mean)" row when it has more than one parameter.

    Example:
        >>> r = {"a": {"params": {"linear": {"blur": {"sigma": 0.9}}}}, "b": {"params": {"linear": {"blur": {"sigma": 0.7}}}}}
        >>> print(params_table(r))
        | family | parameter | head   |     a |     b |
        |:-------|:----------|:-------|------:|------:|
        | blur   | sigma     | linear | 0.900 | 0.700 |
    """
    models = list(results)
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    families: list[str] = []
    heads: list[str] = []
    params_of: dict[str, list[str]] = {}
    for model in models:
        params = results[model].get("params") or {}
        for head, fams in params.items():
            heads.append(head)
            for family, values in (fams or {}).items():
                families.append(family)
                params_of.setdefault(family, []).extend(values)
                for name, value in values.items():
                    cells.setdefault((family, name, head), {})[model] = _float(value)
                if len(values) > 1:
                    cells.setdefault((family, "(mean)", head), {})[model] = family_mean(values)
    rows = []
    for family in ordered(families, PARAM_FAMILIES):
        for name in [*dict.fromkeys(params_of[family]), "(mean)"]:
            for head in ordered(heads, HEADS):
                if (family, name, head) in cells:
                    rows.append({"family": family, "parameter": name, "head": head, **cells[(family, name, head)]})
    return markdown_table(rows, ["family", "parameter", "head", *models])


def classification_table(results: Mapping[str, Any]) -> str:
    """Linear and kNN top-1 per model (and any other classification numbers, after them)."""
    rows, keys = [], []
    for model, sections in results.items():
        classification = sections.get("classification") or {}
        keys.extend(classification)
        rows.append({"model": model, **{k: _float(v) for k, v in classification.items()}})
    labels = {"linear_top1": "linear top-1", "knn_top1": "kNN top-1"}
    columns = [Column("model"), *(Column(k, labels.get(k, k)) for k in ordered(keys, CLASSIFICATION_METRICS))]
    return markdown_table(rows, columns)


def train_table(results: Mapping[str, Any]) -> str:
    """Steps, wall time, steps per second and the final value of every loss term, per model."""
    rows, losses = [], []
    for model, sections in results.items():
        train = sections.get("train") or {}
        final = train.get("final_losses") or {}
        losses.extend(final)
        steps, seconds = train.get("steps"), train.get("seconds")
        rate = None
        if steps is not None and seconds is not None and float(seconds) > 0:
            rate = float(steps) / float(seconds)
        rows.append({"model": model, "steps": steps, "seconds": seconds, "steps/s": rate,
                     **{f"loss:{k}": _float(v) for k, v in final.items()}})  # fmt: skip
    columns = [Column("model"), Column("steps"), Column("seconds", "time", format_seconds), Column("steps/s")]
    columns += [Column(f"loss:{k}", k) for k in dict.fromkeys(losses)]
    return markdown_table(rows, columns)


# --------------------------------------------------------------------------------------------------
# From the probes' own outputs
# --------------------------------------------------------------------------------------------------

_PROBE_TARGETS = {"rotation": "rel_rotation", "color": "rel_color"}


def _pick_part(parts: Iterable[str], part: str | None, where: str) -> str:
    parts = list(parts)
    if part is not None:
        if part not in parts:
            raise ValueError(f"{where}: no part {part!r}; parts: {parts}")
        return part
    if not parts:
        raise ValueError(f"{where}: no results")
    return ordered(parts, KEY_PARTS)[0]


def from_threedie_probe(out: Mapping[str, Any], *, class_part: str | None = None) -> ModelResults:
    """`keras_eqssl.probes.threedie_probe` output -> a model's `threedie` (and `classification`) sections.

    That probe nests part -> head -> target ("rotation" | "color" | "class") with per-dim R² by
    name and SIE's `r2_global`; this format nests head -> part -> target ("rel_rotation" |
    "rel_color") with `r2_per_dim` in `THREEDIE_TARGETS` order and `r2_global_mean`. Its "class"
    top-1 (from the part `class_part`, default the first of `KEY_PARTS`) becomes
    `classification["<head>_top1"]`, e.g. `linear_top1`.

    Example:
        >>> out = {"results": {"equivariant": {"mlp": {
        ...     "rotation": {"r2": {"qx": .5, "qy": .6, "qz": .7, "qw": .8}, "r2_mean": .65, "r2_global": .7},
        ...     "class": {"top1": .8}}}}}
        >>> from_threedie_probe(out)
        {'threedie': {'mlp': {'equivariant': {'rel_rotation': {'r2_per_dim': [0.5, 0.6, 0.7, 0.8], \
'r2_mean': 0.65, 'r2_global_mean': 0.7}}}}, 'classification': {'mlp_top1': 0.8}}
    """
    results = _mapping(out.get("results", out), "threedie_probe output['results']")
    threedie: dict[str, dict[str, dict[str, Any]]] = {}
    classification: dict[str, float] = {}
    class_parts = [p for p, heads in results.items() if any("class" in t for t in heads.values())]
    top1_part = _pick_part(class_parts, class_part, "threedie_probe output") if class_parts else None
    for part, heads in results.items():
        for head, targets in heads.items():
            for target, scores in targets.items():
                if target == "class":
                    if part == top1_part and scores.get("top1") is not None:
                        classification[f"{head}_top1"] = float(scores["top1"])
                    continue
                name = _PROBE_TARGETS.get(target, target)
                per_name = dict(scores.get("r2") or {})
                order = [n for n in THREEDIE_TARGETS.get(name, ()) if n in per_name]
                order += [n for n in per_name if n not in order]
                entry: dict[str, Any] = {"r2_per_dim": [_float(per_name[n]) for n in order]}
                if scores.get("r2_mean") is not None:
                    entry["r2_mean"] = float(scores["r2_mean"])
                if scores.get("r2_global") is not None:
                    entry["r2_global_mean"] = float(scores["r2_global"])
                threedie.setdefault(head, {}).setdefault(part, {})[name] = entry
    section: dict[str, Any] = {}
    if threedie:
        section["threedie"] = threedie
    if classification:
        section["classification"] = classification
    return section  # type: ignore[return-value]


def from_param_probe(out: Mapping[str, Any], *, part: str | None = None) -> ModelResults:
    """`keras_eqssl.probes.param_probe` output -> a model's `params` section, for one part.

    That probe nests part -> head -> family -> {"r2": {name: R²}, "r2_mean"}; this format has no
    part level, so one part is taken: `part`, default the first of `KEY_PARTS` it has.

    Example:
        >>> out = {"results": {"embedding": {"linear": {"blur": {"r2": {"blur": 0.9}, "r2_mean": 0.9}}},
        ...                    "equivariant": {"linear": {"blur": {"r2": {"blur": 0.95}, "r2_mean": 0.95}}}}}
        >>> from_param_probe(out)
        {'params': {'linear': {'blur': {'blur': 0.9}}}}
        >>> from_param_probe(out, part="equivariant")["params"]["linear"]["blur"]
        {'blur': 0.95}
    """
    results = _mapping(out.get("results", out), "param_probe output['results']")
    if not results:
        return {}
    chosen = _pick_part(results, part, "param_probe output")
    params = {
        head: {family: {n: _float(v) for n, v in (scores.get("r2") or {}).items()} for family, scores in fams.items()}
        for head, fams in results[chosen].items()
    }
    return {"params": params}


def from_classification_probe(out: Mapping[str, Any], *, part: str | None = None) -> ModelResults:
    """`keras_eqssl.probes.classification.classification_probe` output -> a `classification` section.

    That probe nests part -> {"linear_top1", "knn_top1"}; one part is taken: `part`, default the
    first of `KEY_PARTS` it has.

    Example:
        >>> from_classification_probe({"results": {"invariant": {"linear_top1": 0.6, "knn_top1": 0.5}}})
        {'classification': {'linear_top1': 0.6, 'knn_top1': 0.5}}
    """
    results = _mapping(out.get("results", out), "classification_probe output['results']")
    if not results:
        return {}
    chosen = _pick_part(results, part, "classification_probe output")
    return {"classification": {k: _float(v) for k, v in results[chosen].items()}}


def merge_sections(*sections: Mapping[str, Any]) -> dict:
    """Deep-merges dicts (later ones win on clashing leaves): one model's sections from several probes.

    Example:
        >>> merge_sections({"classification": {"linear_top1": 0.6}}, {"classification": {"knn_top1": 0.5}},
        ...                {"train": {"steps": 10}})
        {'classification': {'linear_top1': 0.6, 'knn_top1': 0.5}, 'train': {'steps': 10}}
    """
    merged: dict = {}
    for section in sections:
        for key, value in section.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_sections(merged[key], value)
            else:
                merged[key] = merge_sections(value) if isinstance(value, Mapping) else value
    return merged


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """`value` with NumPy types made Python ones, arrays and tuples made lists, and NaN/inf made None.

    Strict JSON has no NaN, so `metrics.json` stores non-finite numbers as null.

    Example:
        >>> to_jsonable({"a": np.float32(0.5), "b": np.array([1, 2]), "c": float("nan")})
        {'a': 0.5, 'b': [1, 2], 'c': None}
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return x if math.isfinite(x) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def write_metrics(results: Mapping[str, Any], path: str | os.PathLike) -> str:
    """Writes `results` as strict JSON (see `to_jsonable`) and returns the path."""
    path = os.fspath(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_jsonable(results), f, indent=2, allow_nan=False)
        f.write("\n")
    return path


def read_metrics(path: str | os.PathLike) -> dict:
    """Reads a `metrics.json` back (non-finite numbers come back as None)."""
    with open(os.fspath(path), encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def _link(path: str, out_dir: str) -> str:
    return os.path.relpath(path, out_dir).replace(os.sep, "/")


def _image_md(label: str, path: str, out_dir: str) -> str:
    return f"![{label}]({_link(path, out_dir)})"


def write_report(
    results: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    title: str,
    command: str | Sequence[str] | None = None,
    images: Mapping[str, str | os.PathLike] | None = None,
    notes: Sequence[str] | None = None,
    baseline: str | None = None,
    plots: bool = True,
    copy_images: bool = True,
) -> dict[str, str]:
    """Writes `report.md`, `metrics.json` and the plots it can derive into `out_dir`.

    `report.md` has: the key numbers table (`key_numbers_table`) and where each number came from;
    a comparison with deltas vs `baseline` (`compare_table`) when there are several models; a
    detail table per section; the plots and `images`, linked relatively; the command; the notes.
    The plots are an R² bar chart per (probe, head) (`r2_<probe>_<head>.png`) and, with several
    models, `comparison.png`. A plot that fails is reported in the notes and a warning, not raised:
    the numbers are written first.

    Args:
        results: the results dict (module docstring); checked with `check_results`.
        out_dir: created if needed.
        title: the report's heading.
        command: the command that produced the results (a string, or argv joined with shlex).
        images: caption -> path of extra pictures (reconstructions, embedding maps); ones outside
            `out_dir` are copied into `out_dir/images/` when `copy_images` (so the folder stands on
            its own), else linked by a relative path. A missing file is noted, not raised.
        notes: Markdown lines listed under "Notes".
        baseline: the model deltas are taken against (default: the first).
        plots: False skips the derived plots (no matplotlib).

    Returns:
        name -> path of every file written: "report", "metrics", "r2_<probe>_<head>",
        "comparison", "image:<caption>".

    Example:
        >>> paths = write_report(results, "runs/probes", title="Probes", command="keras-eqssl-probe --run runs/a",
        ...                      images={"reconstructions": "runs/a/recon.png"})  # doctest: +SKIP
        >>> open(paths["report"]).read()  # doctest: +SKIP
    """
    check_results(results)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    written: dict[str, str] = {"metrics": write_metrics(results, os.path.join(out_dir, "metrics.json"))}
    notes = list(notes or [])
    models = list(results)

    figures: dict[str, str] = {}
    if plots and models:
        from keras_eqssl.probes import plots as _plots

        jobs: list[tuple[str, Callable[[], Any]]] = []
        for probe in PROBES:
            heads = ordered([h for s in results.values() for h in (s.get(probe) or {})], HEADS)
            for head in heads:
                name = f"r2_{probe}_{_safe_name(head)}"
                path = os.path.join(out_dir, f"{name}.png")
                jobs.append((name, lambda p=path, pr=probe, h=head: _plots.r2_bars(results, p, probe=pr, head=h)))
        if len(models) > 1 and any(key_numbers(results).values()):
            path = os.path.join(out_dir, "comparison.png")
            jobs.append(("comparison", lambda p=path: _plots.comparison_bars(results, p)))
        for name, job in jobs:
            try:
                if job() is not None:
                    figures[name] = os.path.join(out_dir, f"{name}.png")
            except Exception as e:  # a broken plot must not lose the numbers
                warnings.warn(f"plot {name} failed: {type(e).__name__}: {e}", stacklevel=2)
                notes.append(f"Plot `{name}` failed: `{type(e).__name__}: {e}`.")
        written.update(figures)

    extra: dict[str, str] = {}
    for caption, src in (images or {}).items():
        src = os.fspath(src)
        if not os.path.isfile(src):
            notes.append(f"Image `{caption}` not found at `{src}`.")
            continue
        inside = os.path.commonpath([os.path.abspath(src), os.path.abspath(out_dir)]) == os.path.abspath(out_dir)
        if copy_images and not inside:
            os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
            dst = os.path.join(out_dir, "images", _safe_name(caption) + os.path.splitext(src)[1])
            shutil.copyfile(src, dst)
            src = dst
        extra[caption] = src
        written[f"image:{caption}"] = src

    md = [f"# {title}", ""]
    if not models:
        md += ["No results.", ""]
    numbers = key_numbers(results)
    if any(numbers.values()):
        md += ["## Key numbers", "", key_numbers_table(results), ""]
        md += _sources_lines(results)
    if len(models) > 1 and any(numbers.values()):
        md += ["## Comparison", "", compare_table(results, baseline), ""]
        if "comparison" in figures:
            md += [_image_md("comparison", figures["comparison"], out_dir), ""]

    if any(s.get("threedie") for s in results.values()):
        md += ["## 3DIEBench relative targets (SIE protocol)", ""]
        md += ["R² of predicting the relative rotation (quaternion) and colour between two views from their "
               "representations; `mean` is the mean of the per-dim R², `global mean` SIE's R² over all "
               "elements at once (the number published 3DIEBench results use).", ""]  # fmt: skip
        for target, table in threedie_tables(results).items():
            label = TARGET_LABELS.get(target, target)
            md += [f"### {label} (`{target}`)", "", table, ""]
        md += [_image_md(n, p, out_dir) for n, p in figures.items() if n.startswith("r2_threedie_")]
        md += [""] if any(n.startswith("r2_threedie_") for n in figures) else []
    if any(s.get("params") for s in results.values()):
        md += ["## Augmentation-parameter regression", ""]
        md += ["R² per parameter; family `all` is one probe regressing every parameter jointly.", ""]
        md += [params_table(results), ""]
        md += [_image_md(n, p, out_dir) for n, p in figures.items() if n.startswith("r2_params_")]
        md += [""] if any(n.startswith("r2_params_") for n in figures) else []
    if any(s.get("classification") for s in results.values()):
        md += ["## Classification", "", classification_table(results), ""]
    if any(s.get("train") for s in results.values()):
        md += ["## Training", "", train_table(results), ""]
    if extra:
        md += ["## Images", ""]
        for caption, path in extra.items():
            md += [f"**{caption}**", "", _image_md(caption, path, out_dir), ""]
    if command is not None:
        text = command if isinstance(command, str) else shlex.join([os.fspath(c) for c in command])
        md += ["## Command", "", "```bash", text, "```", ""]
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    md += ["Numbers: 3 decimals; `nan` = measured but undefined; `–` = not measured. "
           "All numbers are in `metrics.json`.", ""]  # fmt: skip

    report = os.path.join(out_dir, "report.md")
    with open(report, "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return {"report": report, **written}


def describe_sources(sources: Mapping[str, str]) -> str:
    """One model's `key_sources` in words, e.g. "rotation: `mlp`/`embedding`, global mean; params: `linear` head".

    Example:
        >>> describe_sources({"rotation_r2": "threedie/mlp/embedding/rel_rotation/r2_global_mean",
        ...                   "params_r2_hue": "params/linear/hue", "params_r2_blur": "params/mlp/blur",
        ...                   "params_r2_all": "params/mlp/all"})
        'rotation: `mlp`/`embedding`, global mean; params: `mlp` head (`linear` for hue)'
    """
    stat_words = {"r2_global_mean": "global mean", "r2_mean": "per-dim mean"}
    parts = []
    for key, label in (("rotation_r2", "rotation"), ("colour_r2", "colour")):
        if key in sources:
            _, head, part, _, stat = sources[key].split("/")
            parts.append(f"{label}: `{head}`/`{part}`, {stat_words.get(stat, stat)}")
    heads: dict[str, list[str]] = {}
    for where in sources.values():
        if where.startswith("params/"):
            _, head, family = where.split("/", 2)
            heads.setdefault(head, []).append(family)
    if heads:
        main = max(heads, key=lambda h: len(heads[h]))
        others = [f"`{h}` for {', '.join(fams)}" for h, fams in heads.items() if h != main]
        parts.append(f"params: `{main}` head" + (f" ({'; '.join(others)})" if others else ""))
    return "; ".join(parts)


def _sources_lines(results: Mapping[str, Any]) -> list[str]:
    """Which head, part and statistic each model's R² key numbers come from, models with the same grouped."""
    groups: dict[str, list[str]] = {}
    for model, sources in key_sources(results).items():
        text = describe_sources(sources)
        if text:
            groups.setdefault(text, []).append(model)
    if not groups:
        return []
    if len(groups) == 1:
        return [f"R² key numbers: {next(iter(groups))}.", ""]
    return ["R² key numbers:", "", *(f"- {', '.join(ms)}: {text}" for text, ms in groups.items()), ""]
