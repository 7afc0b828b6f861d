"""Charts of the documentation's tables: the diagnosis (docs/diagnosis/*.json) and the speed
tables (docs/performance.md). Each chart reads its figures from the file named, never a copy.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DPI = 100
_COLOURS = ("#7f7f7f", "#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def diagnosis(path: str, data: str, source: pathlib.Path | None = None) -> str:
    """Dot chart of `docs/diagnosis/<data>.json`: one panel per measure, mean ± std over seeds per run.

    The JSON maps each run to a list (one entry per seed) of {measure: value}; measures a run lacks
    are left out of its panel.
    """
    source = source or ROOT / "docs" / "diagnosis" / f"{data}.json"
    runs = json.loads(pathlib.Path(source).read_text())
    measures = list(dict.fromkeys(m for seeds in runs.values() for seed in seeds for m in seed))
    groups = [[m for m in measures if m.startswith("rotation")], [m for m in measures if not m.startswith("rotation")]]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 3.6), dpi=DPI, squeeze=False)
    for ax, group in zip(axes[0], groups):
        _dots(ax, runs, group)
    seeds = max(len(s) for s in runs.values())
    fig.suptitle(f"Diagnosis on the {data}: mean ± std over {seeds} seeds (dots: each seed)", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _dots(ax, runs: dict, measures: list[str]) -> None:
    width = 0.8 / len(runs)
    for r, (run, seeds) in enumerate(runs.items()):
        label = run  # on the run's first dot only
        for m, measure in enumerate(measures):
            values = np.array([s[measure] for s in seeds if measure in s], dtype=float)
            if not len(values):
                continue
            x = m - 0.4 + width * (r + 0.5)
            ax.errorbar(x, values.mean(), yerr=values.std(ddof=1) if len(values) > 1 else 0, fmt="o",
                        color=_COLOURS[r % len(_COLOURS)], capsize=3, markersize=5, label=label)  # fmt: skip
            label = None
            ax.scatter(np.full(len(values), x + width * 0.25), values, s=6, color=_COLOURS[r % len(_COLOURS)],
                       alpha=0.45)  # fmt: skip
    ax.axhline(0, color="#999999", linewidth=0.8)
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels([m.replace(" (", "\n(") for m in measures], fontsize=8)
    ax.set_ylabel("value (R² or entropy / log N)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", alpha=0.3)


def markdown_table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells stripped) of the first Markdown table in `text` whose header starts with `header_start`.

    >>> markdown_table("| a | b |\\n|---|---|\\n| 1 | 2 |\\n", "| a |")
    [['1', '2']]
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
            return rows
    raise ValueError(f"no table whose header starts with {header_start!r}")


# The section's machine, as the page states it next to the table (the caption must name the CPU).
_BF16_CPU = "AMD EPYC, 2 cores, avx512_bf16 yes, oneDNN on"


def speed_per_method(path: str, source: pathlib.Path | None = None) -> str:
    """Bars of the per-method step time, float32 vs mixed_bfloat16 (docs/performance.md, bf16 CPU table)."""
    text = pathlib.Path(source or ROOT / "docs" / "performance.md").read_text()
    rows = markdown_table(
        text, "| method | float32 | mixed_bfloat16 | bf16 / f32 | float32 + XLA |"
    )  # the first: bf16 CPU
    names = [r[0].split(" (")[0] for r in rows]
    f32, bf16 = (np.array([float(r[c]) for r in rows]) for c in (1, 2))
    fig, ax = plt.subplots(figsize=(9.0, 3.6), dpi=DPI)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, f32, 0.4, label="float32", color="#1f77b4")
    ax.bar(x + 0.2, bf16, 0.4, label="mixed_bfloat16", color="#ff7f0e")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("ms per pair (lower is faster)", fontsize=8)
    ax.set_title(f"Training step per method, one run each; ResNet-18 width 1, 64 px, batch 32\nCPU: {_BF16_CPU}"
                 " (gtsa: tiny ViT)", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _plain(cell: str) -> str:
    """A Markdown table cell without its bold and code marks."""
    return cell.replace("**", "").replace("`", "")


def speed_end_to_end(path: str, source: pathlib.Path | None = None) -> str:
    """STL end to end, source images/s: each run as a dot, mean ± std as a bar (docs/performance.md)."""
    text = pathlib.Path(source or ROOT / "docs" / "performance.md").read_text()
    rows = markdown_table(text, "| code | precision | BatchNorm | end to end")
    fig, ax = plt.subplots(figsize=(8.0, 3.4), dpi=DPI)
    for i, row in enumerate(rows):
        runs = np.array([float(v) for v in row[3].split(",")])
        colour = "#7f7f7f" if row[0].startswith("official") else "#1f77b4"
        std = runs.std(ddof=1) if len(runs) > 1 else 0.0
        ax.barh(i, runs.mean(), xerr=std, color=colour, alpha=0.35, capsize=3)
        ax.scatter(runs, np.full(len(runs), i), color=colour, s=14, zorder=3)
        ax.text(max(runs.max(), runs.mean() + std) + 1.5, i, f"{runs.mean():.1f}", va="center", fontsize=8)
    ax.set_yticks(list(range(len(rows))))
    ax.set_yticklabels([_plain(" ".join(c for c in r[:3] if c)) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("source images / s (higher is faster); bar: mean ± std, dots: each run", fontsize=8)
    ax.set_title(f"STL end to end, 96 px, batch 64, ResNet-18 width 1\nCPU: {_BF16_CPU}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


CHARTS = {
    "diagnosis_photos": lambda path: diagnosis(path, "photos"),
    "diagnosis_renders": lambda path: diagnosis(path, "renders"),
    "speed_per_method": speed_per_method,
    "speed_end_to_end": speed_end_to_end,
}
