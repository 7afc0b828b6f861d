"""Boxes and arrows drawn with matplotlib patches: the method diagrams' one drawing mechanism.

A diagram is a list of `Box`es (centre, text, kind) and `Arrow`s between box names, laid out in
data units on a canvas `width` x `height` (1 unit = 1 inch at the figure's size).
"""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patches  # noqa: E402

DPI = 100
# One colour per kind of thing, the same in every diagram (see `legend`).
KINDS = {
    "data": ("#e8f1fb", "#3a6ea5"),  # images, views, parameters
    "net": ("#fdf0dc", "#b7791f"),  # trained networks: backbone, heads, decoder
    "tensor": ("#f4f4f4", "#666666"),  # tensors, with their shapes
    "op": ("#eef7ee", "#3c8d40"),  # parameter-free operations
    "loss": ("#fbe9e9", "#b83232"),  # loss terms
}
KIND_NAMES = {"data": "views / parameters", "net": "trained network", "tensor": "tensor (shape)",
              "op": "operation, no weights", "loss": "loss term"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Box:
    """A rounded box centred at (x, y) with `text`; `w`, `h` in inches."""

    name: str
    x: float
    y: float
    text: str
    kind: str = "tensor"
    w: float = 1.9
    h: float = 0.62


@dataclasses.dataclass(frozen=True)
class Arrow:
    """An arrow from box `src` to box `dst`, with an optional `label` at its middle.

    `rad` bends it (matplotlib's arc3 radius); `dashed` marks a path without gradient or a copy.
    """

    src: str
    dst: str
    label: str = ""
    rad: float = 0.0
    dashed: bool = False


def _edge_point(box: Box, tx: float, ty: float) -> tuple[float, float]:
    """Where the segment from `box`'s centre towards (tx, ty) leaves the box."""
    dx, dy = tx - box.x, ty - box.y
    if dx == 0 and dy == 0:
        return box.x, box.y
    sx = (box.w / 2 + 0.04) / abs(dx) if dx else float("inf")
    sy = (box.h / 2 + 0.04) / abs(dy) if dy else float("inf")
    s = min(sx, sy)
    return box.x + dx * s, box.y + dy * s


def _draw_box(ax, box: Box) -> None:
    face, edge = KINDS[box.kind]
    ax.add_patch(
        patches.FancyBboxPatch(
            (box.x - box.w / 2, box.y - box.h / 2), box.w, box.h, boxstyle="round,pad=0,rounding_size=0.08",
            facecolor=face, edgecolor=edge, linewidth=1.3,
        )
    )  # fmt: skip
    ax.text(box.x, box.y, box.text, ha="center", va="center", fontsize=8.5, linespacing=1.25)


def _draw_arrow(ax, boxes: dict[str, Box], arrow: Arrow) -> None:
    a, b = boxes[arrow.src], boxes[arrow.dst]
    start, end = _edge_point(a, b.x, b.y), _edge_point(b, a.x, a.y)
    ax.add_patch(
        patches.FancyArrowPatch(
            start, end, arrowstyle="-|>", mutation_scale=11, linewidth=1.1, color="#333333",
            connectionstyle=f"arc3,rad={arrow.rad}", linestyle="--" if arrow.dashed else "-",
        )
    )  # fmt: skip
    if arrow.label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        # an arc bends away from the chord by about rad x its length, to the chord's right
        dx, dy = end[0] - start[0], end[1] - start[1]
        mx, my = mx + arrow.rad * dy / 2, my - arrow.rad * dx / 2
        ax.text(mx, my, arrow.label, ha="center", va="center", fontsize=7.5, color="#333333",
                bbox=dict(facecolor="white", edgecolor="none", pad=1.0))  # fmt: skip


def legend(ax, kinds, x: float, y: float) -> None:
    """A row of small swatches naming the box kinds used, starting at (x, y)."""
    for kind in kinds:
        face, edge = KINDS[kind]
        ax.add_patch(patches.Rectangle((x, y - 0.08), 0.22, 0.16, facecolor=face, edgecolor=edge, linewidth=1.0))
        label = KIND_NAMES[kind]
        ax.text(x + 0.3, y, label, va="center", fontsize=7.5, color="#333333")
        x += 0.45 + 0.062 * len(label)


def draw(
    path: str, width: float, height: float, boxes: list[Box], arrows: list[Arrow], title: str, notes: str = ""
) -> str:
    """Writes the diagram to `path` (PNG) and returns `path`.

    Args:
        width, height: the canvas in inches (and data units).
        boxes, arrows: what to draw; arrows name boxes by `Box.name`.
        title: one line on top. notes: text set in the bottom-left corner (e.g. the losses).

    Example:
        >>> draw("/tmp/d.png", 4, 2, [Box("a", 1, 1, "x"), Box("b", 3, 1, "y")], [Arrow("a", "b")], "t")
        '/tmp/d.png'
    """
    by_name = {b.name: b for b in boxes}
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.text(0.15, height - 0.25, title, fontsize=11, fontweight="bold", va="center")
    for arrow in arrows:
        _draw_arrow(ax, by_name, arrow)
    for box in boxes:
        _draw_box(ax, box)
    if notes:
        ax.text(0.15, 0.5, notes, fontsize=7.8, va="bottom", family="monospace", color="#222222")
    legend(ax, [k for k in KINDS if any(b.kind == k for b in boxes)], 0.15, 0.2)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
