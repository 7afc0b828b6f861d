"""A picture of a batch and its augmented views, each with its recorded parameters printed under it.

This is how a person checks that the recorded parameters describe what happened to the image:
the crop boxes are also drawn on the source image, one colour per view.
"""

from __future__ import annotations

import numpy as np

from keras_eqssl.augment.augmix import AUGMIX_ALL_OPS, AUGMIX_OPS
from keras_eqssl.augment.color import JITTER_OPS

_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:cyan", "tab:pink", "tab:olive")
_SKIP = {"overlap", "overlap_valid", "crop_scale", "crop_ratio", "color_applied", "blur_applied"}


def describe(params: dict[str, np.ndarray], augmix_all_ops: bool = False) -> str:
    """A few short lines describing one image's recorded parameters (numpy values, no batch dim).

    `augmix_all_ops`: the AugMix op indices refer to `AUGMIX_ALL_OPS` (`AugMix(all_ops=True)`).
    """
    lines = []
    for key, value in params.items():
        if key in _SKIP or key.startswith("augmix_"):
            continue
        v = np.asarray(value)
        if key == "crop":
            lines.append("crop y{:.2f} x{:.2f} h{:.2f} w{:.2f}".format(*v))
        elif key.endswith("_order"):
            lines.append(f"{key} " + ">".join(JITTER_OPS[i][:3] for i in v))
        elif key == "color":
            applied = params.get("color_applied", np.ones(1))[0] > 0.5
            text = " ".join(f"{n[0]}{x:.2f}" for n, x in zip(JITTER_OPS, v)) if applied else "off"
            lines.append(f"color {text}")
        elif key == "blur":
            lines.append(f"blur sigma={v[0]:.2f}" if v[0] > 0 else "blur off")
        elif key == "rot90":
            lines.append(f"rot90 k={int(v[0])} ({int(v[0]) * 90} deg ccw)")
        elif key == "rotation":
            lines.append(f"rotation {v[0]:+.1f} deg ccw")
        elif key == "translation":
            lines.append(f"translation tx{v[0]:+.1f} ty{v[1]:+.1f} px")
        elif v.size == 1 and v.dtype.kind == "f" and set(np.unique(v)) <= {0.0, 1.0}:
            lines.append(f"{key} {'yes' if v[0] > 0.5 else 'no'}")
        else:
            lines.append(f"{key} {np.array2string(v, precision=2, separator=',')}")
    if "augmix_ops" in params:
        ops = params["augmix_ops"]
        # the unused-step index is the op list's length: 9 (the paper's list) or 13 (all_ops=True)
        names = AUGMIX_ALL_OPS if augmix_all_ops else AUGMIX_OPS
        chains = ["+".join(names[o][:5] for o in chain if o < len(names)) or "-" for chain in ops]
        lines.append(f"augmix mix={float(params['augmix_mix'][0]):.2f}")
        lines.append("chains " + " | ".join(chains))
    return "\n".join(lines)


def draw_views_grid(
    images, views: dict, params: dict, path: str, rows: int = 4, title: str = "", augmix_all_ops: bool = False
) -> str:
    """Writes a PNG grid: one row per source image; the source, then each view with its parameters.

    Args:
        images: (B, H, W, 3) source images (uint8 or float in [0, 1]).
        views: {view: (B, h, w, 3) float in [0, 1]}; params: {view: {key: (B, ...)}}.
        path: where to write the PNG. rows: number of source images shown.
        augmix_all_ops: AugMix's recorded op indices refer to `AUGMIX_ALL_OPS` (see `describe`).

    Returns:
        `path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    names = list(views)
    rows = min(rows, images.shape[0])
    cols = 1 + len(names)
    texts = [
        [describe({k: np.asarray(v[r]) for k, v in params[n].items()}, augmix_all_ops) for n in names]
        for r in range(rows)
    ]
    # Under each row of pictures, a row as tall as its longest parameter text: nothing overlaps or is cut.
    heights = [h for row in texts for h in (2.1, 0.15 + 0.11 * max(t.count("\n") + 1 for t in row))]
    fig = plt.figure(figsize=(2.3 * cols, sum(heights) + (0.4 if title else 0.0)))
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=heights, hspace=0.08, wspace=0.08)
    for r in range(rows):
        ax = fig.add_subplot(grid[2 * r, 0])
        ax.imshow(np.clip(images[r], 0, 1))
        h, w = images.shape[1:3]
        for c, name in enumerate(names):
            if "crop" in params[name]:
                y0, x0, bh, bw = np.asarray(params[name]["crop"][r])
                colour = _COLOURS[c % len(_COLOURS)]
                ax.add_patch(patches.Rectangle((x0 * (w - 1), y0 * (h - 1)), bw * (w - 1), bh * (h - 1),
                                               fill=False, edgecolor=colour, linewidth=1.5))  # fmt: skip
                ax.text(x0 * (w - 1) + 2, y0 * (h - 1) + 8, name, color=colour, fontsize=7)
        ax.set_title(f"source {r}", fontsize=8)
        ax.axis("off")
        fig.add_subplot(grid[2 * r + 1, 0]).axis("off")
        for c, name in enumerate(names):
            ax = fig.add_subplot(grid[2 * r, c + 1])
            ax.imshow(np.clip(np.asarray(views[name][r]), 0, 1))
            ax.set_title(name, fontsize=8, color=_COLOURS[c % len(_COLOURS)])
            ax.axis("off")
            text = fig.add_subplot(grid[2 * r + 1, c + 1])
            text.text(0, 1, texts[r][c], transform=text.transAxes, fontsize=6, va="top", family="monospace")
            text.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
