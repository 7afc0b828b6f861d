"""Reconstruction grids: targets above, decoder outputs below, de-normalised to [0, 1] pixels.

NumPy arrays in, a PNG and the composed array out; matplotlib is imported when a grid is drawn.

Example:
    >>> from keras_eqssl.probes.plots import reconstruction_grid
    >>> grid = reconstruction_grid(targets, recons, "recon.png", mean=0.5, std=0.25)  # doctest: +SKIP
    >>> grid.shape  # doctest: +SKIP
    (130, 526, 3)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from keras_eqssl.probes.plots._canvas import DPI
from keras_eqssl.probes.plots._canvas import figure as _figure
from keras_eqssl.probes.plots._canvas import save as _save

PAD = 2
"""Pixels of white between the cells of `reconstruction_grid`'s composed image."""


def _as_rgb(images: Any, name: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected (N, H, W, 3), (N, H, W, 1) or (N, H, W), got shape {x.shape}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def _resize_nearest(x: np.ndarray, h: int, w: int) -> np.ndarray:
    if x.shape[1:3] == (h, w):
        return x
    rows = np.arange(h) * x.shape[1] // h
    cols = np.arange(w) * x.shape[2] // w
    return x[:, rows][:, :, cols]


def denormalise(images: Any, mean: Any = None, std: Any = None) -> np.ndarray:
    """`images * std + mean` (per channel or scalar), NaN made 0, clipped to [0, 1]; float32 (N, H, W, 3).

    uint8 images are taken as 0..255 pixels (divided by 255, not de-normalised further).
    `mean` and `std` are in [0, 1] pixel units (e.g. ImageNet's (0.485, 0.456, 0.406)).

    Example:
        >>> denormalise(np.zeros((1, 1, 1, 3)), mean=[0.5, 0.25, 1.0], std=0.2)[0, 0, 0].tolist()
        [0.5, 0.25, 1.0]
    """
    raw = np.asarray(images)
    x = _as_rgb(raw, "images")
    if raw.dtype != np.uint8:
        for name, v in (("mean", mean), ("std", std)):
            if v is not None and np.max(np.abs(np.asarray(v, dtype=np.float64))) > 2.0:
                raise ValueError(f"{name}={v} looks like 0..255 units; give mean and std in [0, 1] units")
        if std is not None:
            x = x * np.asarray(std, dtype=np.float32).reshape(-1)
        if mean is not None:
            x = x + np.asarray(mean, dtype=np.float32).reshape(-1)
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0).astype(np.float32)


def reconstruction_grid(
    targets: Any,
    reconstructions: Any,
    path: str | os.PathLike,
    mean: Any = None,
    std: Any = None,
    max_images: int = 8,
    *,
    title: str | None = None,
) -> np.ndarray:
    """Writes a two-row PNG (targets on top, reconstructions below) and returns the composed image.

    Both inputs are (N, H, W, 3) (or 1 channel, or (N, H, W)) in the model's normalised space;
    they are de-normalised with `mean` / `std` when given and clipped to [0, 1] (`denormalise`).
    Reconstructions of another size are resized to the targets' by nearest neighbour.

    Args:
        targets, reconstructions: the images; the first min(N, max_images) of each are shown.
        path: the PNG to write. mean, std: scalars or per-channel, in [0, 1] pixel units.

    Returns:
        The composed float32 image, (2 H + PAD, n W + (n - 1) PAD, 3): cell (row r, column c)
        starts at (r (H + PAD), c (W + PAD)); the gaps are white.

    Example:
        >>> t = np.zeros((3, 4, 4, 3)); r = np.ones((3, 4, 4, 3))
        >>> grid = reconstruction_grid(t, r, "/tmp/grid.png", mean=0.5, std=0.25)  # doctest: +SKIP
        >>> grid.shape, grid[0, 0, 0], grid[4 + PAD, 0, 0]  # doctest: +SKIP
        ((10, 16, 3), 0.5, 0.75)
    """
    t = denormalise(targets, mean, std)
    r = denormalise(reconstructions, mean, std)
    n = min(len(t), len(r), int(max_images))
    if n < 1:
        raise ValueError("no images to show")
    t, r = t[:n], _resize_nearest(r[:n], *t.shape[1:3])
    h, w = t.shape[1:3]
    grid = np.ones((2 * h + PAD, n * w + (n - 1) * PAD, 3), dtype=np.float32)
    for row, images in enumerate((t, r)):
        for c in range(n):
            y, x = row * (h + PAD), c * (w + PAD)
            grid[y : y + h, x : x + w] = images[c]
    scale = max(1.0, 96.0 / h)  # draw small images at least ~96 px tall per row
    fig = _figure(max(3.0, grid.shape[1] * scale / DPI + 1.2), grid.shape[0] * scale / DPI + 0.6)
    ax = fig.add_subplot()
    ax.imshow(grid, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([h / 2, h + PAD + h / 2])
    ax.set_yticklabels(["target", "reconstruction"], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)
    return grid


__all__ = ["PAD", "denormalise", "reconstruction_grid"]
