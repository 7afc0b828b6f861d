"""The matplotlib canvas every plot is drawn on: a `Figure` on the Agg canvas, without pyplot.

Nothing here changes the process's backend or needs a display; matplotlib is imported when a
figure is made.
"""

from __future__ import annotations

import os

DPI = 120
"""Dots per inch of every PNG."""


def figure(width: float, height: float):
    """A new constrained-layout `matplotlib.figure.Figure` of `width` x `height` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig, path: str | os.PathLike) -> str:
    """Writes `fig` as a PNG at `path` (creating its folder) and returns the path as a string."""
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path
