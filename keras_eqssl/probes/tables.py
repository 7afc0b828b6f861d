"""Markdown tables of probe results: `{model: ModelResults}` in, Markdown strings out.

The tables the report (`keras_eqssl.probes.report`) is made of:

- `key_table`: a row per model, a column per key metric (`results.KEY_METRICS`), cells
  `mean ± std` over the probe repeats, plus a "constant predictor" row.
- `difference_table` and `verdict`: each model minus a baseline on the key metrics; a `*` marks a
  difference beyond the noise (`results.compare`).
- `probe_tables`: per probe, target and metric, a row per (model, head), the parts side by side.
- `component_tables`: the same for single components (`Score.dim`), linear head only.
- `train_table`: steps, time and final losses from `ModelResults.info["train"]`.

Every name (probes, parts, heads, targets, metrics) comes from `keras_eqssl.probes.results`.
Only NumPy: importing this module loads neither TensorFlow nor matplotlib.

Example:
>>> from keras_eqssl.probes.results import ModelResults, Score
>>> s = Score("classification", "class", "invariant", "linear", "top1", values=(0.6, 0.62, 0.61))
>>> print(key_table({"simclr": ModelResults([s])}))
| model  |  linear top-1 |
|:-------|--------------:|
| simclr | 0.610 ± 0.010 |
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from keras_eqssl.probes.results import (
    HEADS,
    KEY_METRICS,
    METRICS,
    PARTS,
    PROBES,
    TARGETS,
    THREEDIE_TARGETS,
    Difference,
    KeyMetric,
    ModelResults,
    Score,
    compare,
    key_constants,
    key_differences,
    key_numbers,
    label,
    one,
    ordered,
    pick,
)

MISSING = "–"
"""What a table shows where nothing was measured."""

CONSTANT_ROW = "constant predictor"
"""The label of the key table's constant-predictor row."""


def escape(text: Any) -> str:
    """`text` as one Markdown table cell: `|` escaped, newlines made spaces."""
    return str(text).replace("|", r"\|").replace("\n", " ")


def cell(value: Any, decimals: int = 3) -> str:
    """The text of one cell: `Score` / `Difference` by their `text()`, floats with `decimals`
    decimals ("nan", "inf"), ints as ints, None as `MISSING`, anything else as `str`.

    Example:
    >>> [cell(v) for v in (None, 0.12345, 7, float("nan"), "a")]
    ['–', '0.123', '7', 'nan', 'a']
    """
    if value is None:
        return MISSING
    if isinstance(value, (Score, Difference)):
        return value.text(decimals)
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        return "nan" if math.isnan(x) else (("inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:.{decimals}f}")
    return str(value)


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, left: int = 1, decimals: int = 3) -> str:
    """A GitHub Markdown table, padded to line up in plain text.

    Args:
        header: the column titles (length C).
        rows: sequences of C cells each (formatted by `cell`; shorter rows are padded with `MISSING`).
        left: how many leading columns are labels (left-aligned); the others are right-aligned.
        decimals: decimals of float cells.

    Returns:
        The table, lines joined by "\\n" (no trailing newline).

    Example:
    >>> print(markdown_table(["model", "R²"], [["a|b", 0.5], ["c", None]]))
    | model |    R² |
    |:------|------:|
    | a\\|b  | 0.500 |
    | c     |     – |
    """
    head = [escape(h) for h in header]
    body = [[escape(cell(v, decimals)) for v in row] + [MISSING] * (len(head) - len(row)) for row in rows]
    widths = [max([len(head[j]), 3] + [len(r[j]) for r in body]) for j in range(len(head))]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) if j < left else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(":" + "-" * (w + 1) if j < left else "-" * (w + 1) + ":" for j, w in enumerate(widths)) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in body)])


# --------------------------------------------------------------------------------------------------
# Key metrics
# --------------------------------------------------------------------------------------------------


def _key_names(results: Mapping[str, ModelResults], metrics: Sequence[KeyMetric] = KEY_METRICS) -> list[str]:
    numbers = key_numbers(results, metrics)
    return [k.name for k in metrics if any(k.name in row for row in numbers.values())]


def key_table(
    results: Mapping[str, ModelResults], baseline: str | None = None, metrics: Sequence[KeyMetric] = KEY_METRICS
) -> str | None:
    """The key metrics: a row per model, a column per `metrics` name (default `KEY_METRICS`) some model has.

    Cells are `Score.text()` (mean ± std over the repeats). A last row, `CONSTANT_ROW`, holds the
    same figures with head="constant" (`results.key_constants`: from `baseline`, else the first
    model that has them). Returns None when no model has a key metric.
    """
    numbers = key_numbers(results, metrics)
    names = _key_names(results, metrics)
    if not names:
        return None
    rows = [[model, *(row.get(n) for n in names)] for model, row in numbers.items()]
    constants = key_constants(results, baseline, metrics)
    if any(n in constants for n in names):
        rows.append([CONSTANT_ROW, *(constants.get(n) for n in names)])
    return markdown_table(["model", *names], rows)


def difference_table(
    results: Mapping[str, ModelResults], baseline: str, metrics: Sequence[KeyMetric] = KEY_METRICS
) -> str | None:
    """Each model but `baseline` minus `baseline` on the key metrics: a row per model.

    Cells are `results.compare(model, baseline).text()`, e.g. "+0.120 *", the `*` marking a
    difference beyond the noise. Returns None when there is no other model or no shared key metric.
    Raises ValueError for an unknown `baseline`.
    """
    diffs = key_differences(results, baseline, metrics)
    names = [n for n in _key_names(results, metrics) if any(n in row for row in diffs.values())]
    if not diffs or not names:
        return None
    rows = [[model, *(row.get(n) for n in names)] for model, row in diffs.items()]
    return markdown_table([f"Δ vs {baseline}", *names], rows)


def verdict(results: Mapping[str, ModelResults], baseline: str, metrics: Sequence[KeyMetric] = KEY_METRICS) -> str:
    """One plain paragraph: for each model but `baseline`, the key metrics it is ahead on beyond the
    noise, behind on beyond the noise, and within the noise on ("no difference").

    Example:
    >>> from keras_eqssl.probes.results import ModelResults, Score
    >>> top1 = lambda *v: ModelResults([Score("classification", "class", "invariant", "linear", "top1", values=v)])
    >>> verdict({"a": top1(0.5, 0.52, 0.51), "b": top1(0.6, 0.61, 0.62)}, baseline="a")
    'b vs a: ahead beyond the noise on linear top-1 (+0.100 *); behind beyond the noise on none; \
no difference (within the noise) on none.'
    """
    sentences = []
    for model, row in key_differences(results, baseline, metrics).items():
        if not row:
            sentences.append(f"{model} vs {baseline}: no key metric in common.")
            continue
        groups: dict[str, list[str]] = {"ahead": [], "behind": [], "same": []}
        for name, d in row.items():
            kind = "same" if not d.beyond_noise else ("ahead" if d.delta > 0 else "behind")
            groups[kind].append(f"{name} ({d.text()})")

        def listed(items: list[str]) -> str:
            return ", ".join(items) if items else "none"

        sentences.append(
            f"{model} vs {baseline}: ahead beyond the noise on {listed(groups['ahead'])}; "
            f"behind beyond the noise on {listed(groups['behind'])}; "
            f"no difference (within the noise) on {listed(groups['same'])}."
        )
    return " ".join(sentences)


def split_table(results: Mapping[str, ModelResults], head: str = "linear") -> str | None:
    """Did the split do its job? Equivariant minus invariant part, per model and regression target.

    A row per model that has both parts, a column per (probe, target) with R² (whole target) of
    `head`; cells `results.compare(equivariant, invariant).text()` (paired by repeat, `*` beyond
    the noise). A positive Δ means the equivariant part carries more of the transformation.
    Returns None when no model has both parts.

    >>> from keras_eqssl.probes.results import ModelResults, Score
    >>> s = lambda part, *v: Score("params", "rotation", part, "linear", "r2", v)
    >>> print(split_table({"m": ModelResults([s("equivariant", 0.7, 0.8, 0.75), s("invariant", 0.5, 0.6, 0.56)])}))
    | equivariant − invariant | params rotation R² |
    |:------------------------|-------------------:|
    | m                       |           +0.197 * |
    """
    columns, rows = [], []
    for model, r in results.items():
        row = {}
        for s in r.scores:
            if s.part != "equivariant" or s.head != head or s.metric != "r2" or s.dim:
                continue
            inv = one(r.scores, probe=s.probe, target=s.target, part="invariant", head=head, metric="r2", dim="")
            if inv is not None:
                name = f"{'3DIE' if s.probe == '3diebench' else s.probe} {label(s.target)} R²"
                row[name] = compare(s, inv)
                columns.append(name)
        if row:
            rows.append((model, row))
    if not rows:
        return None
    columns = list(dict.fromkeys(columns))
    return markdown_table(
        ["equivariant − invariant", *columns], [[m, *(row.get(c) for c in columns)] for m, row in rows]
    )


# --------------------------------------------------------------------------------------------------
# Per probe and per component
# --------------------------------------------------------------------------------------------------


def _all_scores(results: Mapping[str, ModelResults]) -> list[Score]:
    return [s for r in results.values() for s in r.scores]


def _groups(scores: Sequence[Score]) -> list[tuple[str, str, str]]:
    """The (probe, target, metric) triples of `scores`, in report order."""
    out = []
    for probe in ordered([s.probe for s in scores], PROBES):
        of_probe = [s for s in scores if s.probe == probe]
        for target in ordered([s.target for s in of_probe], TARGETS):
            of_target = [s for s in of_probe if s.target == target]
            out += [(probe, target, m) for m in ordered([s.metric for s in of_target], METRICS)]
    return out


def probe_tables(results: Mapping[str, ModelResults]) -> dict[tuple[str, str, str], str]:
    """A table per (probe, target, metric) of the whole-target scores (`dim == ""`).

    Rows are (model, head), the constant head included; columns are the parts present, side by
    side in `PARTS` order (embedding | invariant | equivariant); cells `mean ± std`.

    Returns:
        `{(probe, target, metric): Markdown table}` in report order (`PROBES`, `TARGETS`, `METRICS`).
    """
    tables = {}
    for probe, target, metric in _groups(pick(_all_scores(results), dim="")):
        chosen = {m: pick(r.scores, probe=probe, target=target, metric=metric) for m, r in results.items()}
        tables[(probe, target, metric)] = _parts_table(chosen, "head", HEADS)
    return tables


def component_tables(results: Mapping[str, ModelResults], head: str = "linear") -> dict[tuple[str, str, str], str]:
    """A table per (probe, target, metric) of the single-component scores (`dim != ""`) of `head`.

    Rows are (model, component), in the target's component order where known
    (`THREEDIE_TARGETS`); columns the parts present, side by side; cells `mean ± std`.

    Returns:
        `{(probe, target, metric): Markdown table}`; empty when no score has a component.
    """
    scores = [s for s in pick(_all_scores(results), head=head, dim=None) if s.dim]
    tables = {}
    for probe, target, metric in _groups(scores):
        chosen = {
            m: [s for s in pick(r.scores, probe=probe, target=target, metric=metric, head=head, dim=None) if s.dim]
            for m, r in results.items()
        }
        known = THREEDIE_TARGETS[target][1] if probe == "3diebench" and target in THREEDIE_TARGETS else ()
        tables[(probe, target, metric)] = _parts_table(chosen, "dim", known, row_label="component")
    return tables


def _parts_table(chosen: Mapping[str, list], row: str, known: Sequence[str], row_label: str | None = None) -> str:
    """Markdown table of each model's scores in `chosen`: a row per (model, `Score.<row>` in `known`
    order), a column per part present (`PARTS` order), cells `mean ± std`."""
    parts = ordered([s.part for ss in chosen.values() for s in ss], PARTS)
    rows = [
        [model, key, *(one(ss, **{row: key}, part=p) for p in parts)]
        for model, ss in chosen.items()
        for key in ordered([getattr(s, row) for s in ss], known)
    ]
    return markdown_table(["model", row_label or row, *parts], rows, left=2)


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


def format_seconds(seconds: Any) -> str:
    """A duration for people: "12.3 s", "4 min 05 s", "2 h 03 min"; `MISSING` for None.

    Example:
    >>> format_seconds(12.34), format_seconds(245), format_seconds(7380.0)
    ('12.3 s', '4 min 05 s', '2 h 03 min')
    """
    if seconds is None:
        return MISSING
    s = float(seconds)
    if not math.isfinite(s):
        return cell(s)
    sign, s = ("-" if s < 0 else ""), abs(s)
    if s < 60:
        return f"{sign}{s:.1f} s"
    if s < 3600:
        m, r = divmod(int(round(s)), 60)
        return f"{sign}{m} min {r:02d} s"
    h, r = divmod(int(round(s)), 3600)
    return f"{sign}{h} h {r // 60:02d} min"


def train_table(results: Mapping[str, ModelResults]) -> str | None:
    """Steps, wall time, steps per second and each final loss, a row per model with `info["train"]`
    (`{"steps": int, "seconds": float, "final_losses": {name: float}}`, every key optional).
    Returns None when no model has it."""
    trains = {m: r.info["train"] for m, r in results.items() if isinstance(r.info.get("train"), Mapping)}
    if not trains:
        return None
    losses = ordered([k for t in trains.values() for k in (t.get("final_losses") or {})], ())
    rows = []
    for model, train in trains.items():
        steps, seconds = train.get("steps"), train.get("seconds")
        rate = float(steps) / float(seconds) if steps is not None and seconds and float(seconds) > 0 else None
        final = train.get("final_losses") or {}
        rows.append([model, steps, format_seconds(seconds), rate, *(final.get(k) for k in losses)])
    return markdown_table(["model", "steps", "time", "steps/s", *losses], rows)
