"""Bar charts of probe scores with error bars: `{model: ModelResults}` in, a PNG out.

- `score_bars`: the key metrics (`results.KEY_METRICS`), a group per metric, a bar per model.
- `probe_bars`: one probe's target, a group per part (embedding | invariant | equivariant), a bar
  per model.

Each bar is the mean over the probe repeats with an error bar of ± one standard deviation; a
dashed black line over a group is the constant predictor (head "constant"). Both return a
`BarData` with the numbers drawn. matplotlib is imported when a chart is drawn.

Example:
    >>> from keras_eqssl.probes.plots import score_bars
    >>> bars = score_bars(results, "key_bars.png")  # doctest: +SKIP
    >>> bars.groups, bars.stds.shape  # doctest: +SKIP
    (['3DIE rotation R²', 'linear top-1'], (2, 2))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from keras_eqssl.probes.plots._canvas import figure as _figure
from keras_eqssl.probes.plots._canvas import save as _save
from keras_eqssl.probes.results import (
    HEADS,
    KEY_METRICS,
    METRICS,
    PARTS,
    ModelResults,
    Score,
    key_constants,
    key_numbers,
    label,
    one,
    ordered,
    pick,
)


class BarData(NamedTuple):
    """What a bar chart drew.

    Attributes:
        path: the PNG written.
        groups: the G group labels along the x axis.
        models: the M models, one bar (and colour) each per group.
        means: (M, G) bar heights (mean over the repeats); NaN where the model has no score.
        stds: (M, G) error bar half-lengths (standard deviation over the repeats); NaN likewise.
        reference: (G,) the constant predictor's mean per group; NaN where there is none.
    """

    path: str
    groups: list
    models: list
    means: np.ndarray
    stds: np.ndarray
    reference: np.ndarray


def model_colours(models: Sequence[str]) -> dict[str, Any]:
    """One matplotlib colour per model, stable by position (tab10, tab20 beyond ten models)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _stats(scores: Sequence[Score | None]) -> tuple[np.ndarray, np.ndarray]:
    means = np.array([np.nan if s is None else s.mean for s in scores], dtype=np.float64)
    stds = np.array([np.nan if s is None else s.std for s in scores], dtype=np.float64)
    return means, stds


def _draw(ax, data: BarData, colours: Mapping[str, Any], floor: float | None) -> None:
    """Grouped bars with error bars, value labels and the reference lines on `ax`.

    The y axis runs from min(0, lowest mean - std, clipped at `floor`) to max(1, highest mean +
    std). A mean below the axis is drawn at its bottom and labelled with its value and an arrow.
    """
    n_models, n_groups = data.means.shape
    width = 0.8 / max(n_models, 1)
    x = np.arange(n_groups, dtype=np.float64)
    low_end = np.concatenate([(data.means - np.nan_to_num(data.stds)).ravel(), data.reference])
    high_end = np.concatenate([(data.means + np.nan_to_num(data.stds)).ravel(), data.reference])
    low = float(np.nanmin(low_end)) if np.isfinite(low_end).any() else 0.0
    high = float(np.nanmax(high_end)) if np.isfinite(high_end).any() else 1.0
    bottom = min(0.0, low if floor is None else max(low, floor))
    top = max(1.0, high)
    span = top - bottom
    bottom, top = (bottom - 0.04 * span if bottom < 0 else bottom), top + 0.1 * span
    vertical = n_models * n_groups > 12
    for i, model in enumerate(data.models):
        xs = x - 0.4 + width * (i + 0.5)
        means, stds = data.means[i], data.stds[i]
        ok = np.isfinite(means)
        shown = np.clip(np.where(ok, means, 0.0), bottom, top)
        ax.bar(xs[ok], shown[ok], width * 0.9, color=colours[model], label=model)
        bars = ok & (means >= bottom) & (means <= top)
        ax.errorbar(xs[bars], means[bars], yerr=np.nan_to_num(stds[bars]), fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2)  # fmt: skip
        for xi, si, mi, di in zip(xs[ok], shown[ok], means[ok], np.nan_to_num(stds[ok])):
            text = f"{mi:.2f}" + ("↓" if mi < bottom else "")
            y = max(si + di, si, 0.0) + 0.01 * span
            ax.text(xi, min(y, top), text, ha="center", va="bottom", fontsize=6, rotation=90 if vertical else 0)
    for n, g in enumerate(np.flatnonzero(np.isfinite(data.reference))):
        ax.hlines(data.reference[g], g - 0.45, g + 0.45, colors="black", linestyles="--", linewidth=1.0,
                  label=None if n else "constant predictor")  # fmt: skip
    ax.set_xticks(x)
    slanted = n_groups > 4
    ax.set_xticklabels(data.groups, rotation=30 if slanted else 0, ha="right" if slanted else "center", fontsize=7)
    ax.set_xlim(-0.6, n_groups - 0.4)
    ax.set_ylim(bottom, top)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _plot(data: BarData, colours, floor: float | None, ylabel: str, title: str) -> BarData:
    n_models, n_groups = data.means.shape
    fig = _figure(max(6.0, 0.22 * n_groups * max(n_models, 2) + 2.5), 4.0)
    ax = fig.add_subplot()
    _draw(ax, data, colours, floor)
    ax.set_ylabel(ylabel, fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, data.path)
    return data


def score_bars(
    results: Mapping[str, ModelResults],
    out_png: str | os.PathLike,
    *,
    baseline: str | None = None,
    floor: float | None = -1.0,
    title: str | None = None,
    metrics: Sequence = KEY_METRICS,
    ylabel: str = "score",
) -> BarData:
    """Grouped bars of the key metrics: a group per `metrics` name some model has, a bar per
    model (mean ± std over the repeats as error bars), the constant predictor as a dashed line.

    Args:
        results: `{model: ModelResults}`; models without any key metric get no bars.
        out_png: the PNG to write.
        baseline: the model the constant predictor is taken from first (`results.key_constants`).
        floor: lowest y shown (R² can be hugely negative); None: no floor.
        title: the figure's title.
        metrics: the `results.KeyMetric`s to draw (default `KEY_METRICS`).
        ylabel: the y axis' label.

    Returns:
        `BarData` with (M, G) means and stds, M = every model in `results`.

    Raises:
        ValueError: when no model has a key metric.
    """
    numbers = key_numbers(results, metrics)
    groups = [k.name for k in metrics if any(k.name in row for row in numbers.values())]
    if not groups:
        raise ValueError("score_bars: no model has a key metric.")
    models = list(results)
    stats = [_stats([numbers[m].get(g) for g in groups]) for m in models]
    constants = key_constants(results, baseline, metrics)
    reference = _stats([constants.get(g) for g in groups])[0]
    data = BarData(os.fspath(out_png), groups, models, np.array([s[0] for s in stats]), np.array([s[1] for s in stats]),
                   reference)  # fmt: skip
    return _plot(data, model_colours(models), floor, ylabel, title or "Key metrics (mean ± std over the repeats)")


def probe_bars(
    results: Mapping[str, ModelResults],
    out_png: str | os.PathLike,
    probe: str,
    target: str,
    *,
    metric: str | None = None,
    head: str | None = None,
    floor: float | None = -1.0,
    title: str | None = None,
) -> BarData:
    """Grouped bars of one probe's target: a group per part (side by side in `PARTS` order), a bar
    per model (mean ± std over the repeats as error bars), the constant head as a dashed line.

    Args:
        results: `{model: ModelResults}`.
        out_png: the PNG to write.
        probe, target: which figures (whole target, `dim == ""`).
        metric: default: the first of `METRICS` present ("r2" before "r2_global"; "top1").
        head: default: "linear" if present, else the first other non-constant head.
        floor, title: as in `score_bars`.

    Returns:
        `BarData` with (M, P) means and stds, M = the models that have this probe's target.

    Raises:
        ValueError: when no model has a score of this probe, target (and metric / head).
    """
    scores = {m: pick(r.scores, probe=probe, target=target) for m, r in results.items()}
    scores = {m: ss for m, ss in scores.items() if ss}
    if not scores:
        raise ValueError(f"probe_bars: no model has {probe!r} scores for {target!r}.")
    everything = [s for ss in scores.values() for s in ss]
    metric = metric or ordered([s.metric for s in everything], METRICS)[0]
    heads = ordered([s.head for s in everything if s.metric == metric and s.head != "constant"], HEADS)
    head = head or ("linear" if "linear" in heads else (heads[0] if heads else None))
    if head not in heads:
        raise ValueError(f"probe_bars: no {probe!r} {target!r} {metric!r} scores of head {head!r}; heads: {heads}.")
    scores = {m: [s for s in ss if s.metric == metric] for m, ss in scores.items()}
    scores = {m: ss for m, ss in scores.items() if any(s.head == head for s in ss)}
    groups = ordered([s.part for ss in scores.values() for s in ss if s.head == head], PARTS)
    models = list(scores)
    stats = [_stats([one(scores[m], head=head, part=p) for p in groups]) for m in models]
    reference = np.full(len(groups), np.nan)
    for j, part in enumerate(groups):
        found = next((c for m in models if (c := one(scores[m], head="constant", part=part)) is not None), None)
        reference[j] = np.nan if found is None else found.mean
    data = BarData(os.fspath(out_png), groups, models, np.array([s[0] for s in stats]), np.array([s[1] for s in stats]),
                   reference)  # fmt: skip
    colours = model_colours(list(results))  # by position among all models: the same colour in every chart
    name = f"{label(probe)}: {label(target)}, {label(metric)} ({head} head)"
    return _plot(data, colours, floor, label(metric), title or f"{name}, mean ± std over the repeats")


__all__ = ["BarData", "model_colours", "probe_bars", "score_bars"]
