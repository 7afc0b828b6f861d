"""The Markdown report of probe results: `{model: ModelResults}` in, `report.md`, `metrics.json` and
bar charts out.

The tables come from `keras_eqssl.probes.tables`, the charts from `keras_eqssl.probes.plots.bars`,
the format and every name from `keras_eqssl.probes.results`. Importing this module loads neither
TensorFlow nor matplotlib (matplotlib is loaded when a chart is drawn).

Example:
    >>> from keras_eqssl.probes.results import ModelResults, Score
    >>> top1 = Score("classification", "class", "invariant", "linear", "top1", values=(0.61, 0.63, 0.62))
    >>> paths = write_report({"simclr": ModelResults([top1])}, "runs/probe", title="SimCLR")  # doctest: +SKIP
    >>> sorted(paths)  # doctest: +SKIP
    ['key_bars', 'metrics', 'report']
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from keras_eqssl.probes import tables
from keras_eqssl.probes.results import NOISE_SIGMAS, ModelResults, label, write_metrics


def _repeats_text(info: Any) -> str:
    if isinstance(info, Mapping):
        return "; ".join(f"{label(str(k))}: {v}" for k, v in info.items())
    if isinstance(info, (list, tuple)):
        return " ".join(str(v) for v in info)
    return str(info)


def how_to_read(results: Mapping[str, ModelResults]) -> list[str]:
    """The "How to read this" section's Markdown lines: what a cell is, what a repeat is (each
    model's `info["probes"]`: a string, a list of strings or `{probe: text}`), what `*` means."""
    texts = {m: _repeats_text(r.info["probes"]) for m, r in results.items() if r.info.get("probes")}
    sigmas = f"{NOISE_SIGMAS:g}"
    paragraph = (
        "Each cell is the mean ± standard deviation of the figure over the probe's repeats (one number "
        "when there was one repeat); a repeat re-draws the probe's training sample and resamples its "
        "test set. A difference `Δ` is the model minus the baseline, paired repeat by repeat when "
        f"both ran the same repeats; `*` marks |Δ| > {sigmas} × the standard deviation of the paired "
        "per-repeat differences (beyond the noise), no `*` means within the noise. The constant "
        "predictor (the train mean, or the most frequent class) is the figure every probe must beat."
    )
    lines = [paragraph, ""]
    distinct = list(dict.fromkeys(texts.values()))
    if len(distinct) == 1:
        lines += [f"Repeats: {distinct[0]}", ""]
    elif distinct:
        lines += ["Repeats:", "", *(f"- {m}: {t}" for m, t in texts.items()), ""]
    return lines


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def _chart_name(probe: str, target: str) -> str:
    return f"bars_{_safe(probe)}_{_safe(target)}"


def _link(caption: str, path: str, out_dir: str) -> str:
    return f"![{caption}]({os.path.relpath(path, out_dir).replace(os.sep, '/')})"


def _draw_charts(results: Mapping[str, ModelResults], out_dir: str, baseline: str | None, notes: list[str]) -> dict:
    """Draws the key-metric chart and one chart per (probe, target); a failing chart becomes a note."""
    from keras_eqssl.probes.plots import bars

    jobs = []
    if tables.key_table(results) is not None:
        jobs.append(("key_bars", lambda p: bars.score_bars(results, p, baseline=baseline)))
    for probe, target in dict.fromkeys((p, t) for p, t, _ in tables.probe_tables(results)):
        jobs.append((_chart_name(probe, target), lambda path, p=probe, t=target: bars.probe_bars(results, path, p, t)))
    charts = {}
    for name, job in jobs:
        path = os.path.join(out_dir, f"{name}.png")
        try:
            job(path)
            charts[name] = path
        except Exception as e:  # a broken chart must not lose the numbers
            warnings.warn(f"chart {name} failed: {type(e).__name__}: {e}", stacklevel=3)
            notes.append(f"Chart `{name}` failed: `{type(e).__name__}: {e}`.")
    return charts


def write_report(
    results: Mapping[str, ModelResults],
    out_dir: str | os.PathLike,
    *,
    title: str,
    command: str | Sequence[str] | None = None,
    images: Mapping[str, str | os.PathLike] | None = None,
    notes: Sequence[str] = (),
    baseline: str | None = None,
    plots: bool = True,
) -> dict[str, str]:
    """Writes `report.md`, `metrics.json` (`results.write_metrics`) and the bar charts into `out_dir`.

    `report.md` has: the title; the command in a code block; the key table with the constant
    predictor's row (and its chart); with `baseline`, the difference table and a plain verdict;
    "How to read this"; per-probe tables, parts side by side (and a chart per probe target); the
    per-component tables in a `<details>` block; the training table; the images; the notes; and
    each model's `info["skipped"]` reasons.

    Args:
        results: `{model: ModelResults}`, in the order the tables list the models.
        out_dir: created if needed.
        title: the report's heading.
        command: the command that made the results (a string, or argv joined with shlex).
        images: `{caption: PNG path}`, linked relative to `out_dir`; a missing file becomes a note.
        notes: Markdown lines listed under "Notes".
        baseline: the model differences are taken against; None: no difference table.
        plots: False draws no chart (no matplotlib).

    Returns:
        `{"report": path, "metrics": path, "key_bars": path, "bars_<probe>_<target>": path, ...}`
        for every file written.

    Raises:
        ValueError: for a `baseline` that is not one of the models.
    """
    if baseline is not None and baseline not in results:
        raise ValueError(f"write_report: baseline {baseline!r} is not one of the models {list(results)}.")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    notes = list(notes)
    paths = {"metrics": write_metrics(results, os.path.join(out_dir, "metrics.json"))}
    charts = _draw_charts(results, out_dir, baseline, notes) if plots and results else {}
    paths.update(charts)

    md = [f"# {title}", ""]
    if command is not None:
        text = command if isinstance(command, str) else shlex.join([os.fspath(c) for c in command])
        md += ["```bash", text, "```", ""]
    if not results:
        md += ["No results.", ""]
    key = tables.key_table(results, baseline)
    if key is not None:
        md += ["## Key metrics", "", key, ""]
        md += [_link("key metrics", charts["key_bars"], out_dir), ""] if "key_bars" in charts else []
    if baseline is not None:
        diff = tables.difference_table(results, baseline)
        if diff is not None:
            md += [f"## Difference from {baseline}", "", diff, "", tables.verdict(results, baseline), ""]
    split = tables.split_table(results)
    if split is not None:
        md += ["## Equivariant vs invariant part", "",
               "Does the split do its job? Each cell: the equivariant part's R² minus the invariant part's (linear "
               "heads, paired by repeat; `*` = beyond the noise). Positive: the equivariant part carries more of it.",
               "", split, ""]  # fmt: skip
    if results:
        md += ["## How to read this", "", *how_to_read(results)]

    by_probe = tables.probe_tables(results)
    for probe in dict.fromkeys(p for p, _, _ in by_probe):
        md += [f"## {label(probe)}", ""]
        for target in dict.fromkeys(t for p, t, _ in by_probe if p == probe):
            for (_, _, metric), table in ((k, v) for k, v in by_probe.items() if k[:2] == (probe, target)):
                md += [f"### {label(target)}: {label(metric)}", "", table, ""]
            chart = charts.get(_chart_name(probe, target))
            md += [_link(f"{label(probe)}: {label(target)}", chart, out_dir), ""] if chart else []
    components = tables.component_tables(results)
    if components:
        md += ["## Per component (linear head)", "", "<details><summary>Every component's score</summary>", ""]
        for (probe, target, metric), table in components.items():
            md += [f"**{label(probe)}, {label(target)}: {label(metric)}**", "", table, ""]
        md += ["</details>", ""]
    train = tables.train_table(results)
    if train is not None:
        md += ["## Training", "", train, ""]
    shown = {}
    for caption, path in (images or {}).items():
        if os.path.isfile(path):
            shown[caption] = os.fspath(path)
        else:
            notes.append(f"Image `{caption}` not found at `{os.fspath(path)}`.")
    if shown:
        md += ["## Images", ""]
        for caption, path in shown.items():
            md += [f"**{caption}**", "", _link(caption, path, out_dir), ""]
    if notes:
        md += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    skipped = {m: r.info["skipped"] for m, r in results.items() if r.info.get("skipped")}
    if skipped:
        md += ["## Skipped", ""]
        md += [f"- {m}: {reason}" for m, reasons in skipped.items() for reason in _as_list(reasons)]
        md += [""]
    md += ["Every score, with its value in each repeat, is in `metrics.json`.", ""]

    paths["report"] = os.path.join(out_dir, "report.md")
    with open(paths["report"], "w", encoding="utf-8") as f:
        f.write("\n".join(md))
    return {"report": paths.pop("report"), **paths}


def _as_list(value: Any) -> list:
    return [value] if isinstance(value, str) else list(value)
