"""2-D maps of embeddings: t-SNE (scikit-learn, when installed) or PCA (NumPy), coloured by labels.

NumPy arrays in, a PNG and the drawn coordinates out; matplotlib is imported when a map is drawn.

Example:
    >>> from keras_eqssl.probes.plots import embedding_map
    >>> m = embedding_map(features, "map.png", {"class": labels}, method="pca")  # doctest: +SKIP
    >>> m.coords.shape  # doctest: +SKIP
    (200, 2)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from keras_eqssl.probes.plots._canvas import figure as _figure
from keras_eqssl.probes.plots._canvas import save as _save


class Map2D(NamedTuple):
    """What `embedding_map` drew: the 2-D coordinates of the points kept, their indices, the method."""

    coords: np.ndarray
    index: np.ndarray
    method: str


def pca_2d(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Projects (N, D) features on their first two principal components (NumPy SVD).

    Signs are fixed (each component's largest loading is positive) so the map is reproducible.

    Returns:
        (N, 2) coordinates and the fraction of variance each component explains.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(100, 5)) * [5, 2, 1, 1, 1]
        >>> coords, ratio = pca_2d(x)
        >>> coords.shape, bool(ratio[0] > ratio[1])
        ((100, 2), True)
    """
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1) - x.reshape(len(x), -1).mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2]
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    coords = x @ vt.T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    total = float(np.sum(s**2)) or 1.0
    ratio = np.pad(s[:2] ** 2 / total, (0, max(0, 2 - len(s[:2]))))
    return coords, ratio


def tsne_available() -> bool:
    """Whether scikit-learn (for t-SNE) can be imported."""
    try:
        import sklearn.manifold  # noqa: F401
    except ImportError:
        return False
    return True


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    if x.shape[1] > 50:  # the usual PCA to 50 dims first: faster, and less noise
        x = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        x = x @ vt[:50].T
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def _is_categorical(values: np.ndarray) -> bool:
    return values.dtype.kind in "biuUSO"


def embedding_map(
    features: Any,
    path: str | os.PathLike,
    colour_by: Mapping[str, Any],
    method: str = "tsne",
    seed: int = 0,
    *,
    max_points: int = 5000,
    categorical: Sequence[str] | None = None,
    cmaps: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Map2D:
    """A 2-D map of (N, D) features, a subplot per colouring; the title says which method drew it.

    method="tsne" uses scikit-learn's t-SNE when it is installed and falls back to PCA (NumPy)
    otherwise; method="pca" always uses PCA. Rows with non-finite features are left out, and at
    most `max_points` rows (chosen with `seed`) are drawn.

    A colouring is categorical (a colour per value, with a legend) when its values are integers,
    booleans or strings, or its name is in `categorical`; otherwise continuous, with a colourbar
    (`cmaps[name]`, default "viridis"; "twilight" suits angles).

    Args:
        features: (N, D) array. path: the PNG to write.
        colour_by: name -> (N,) values, e.g. {"class": labels, "rotation (deg)": angles}.

    Returns:
        `Map2D(coords, index, method)`: the (M, 2) coordinates drawn, the rows of `features` they
        are, and "tsne" or "pca".

    Example:
        >>> feats = np.random.default_rng(0).normal(size=(200, 16))
        >>> m = embedding_map(feats, "/tmp/map.png", {"class": np.arange(200) % 4,
        ...                                            "angle": np.linspace(0, 360, 200)}, method="pca")  # doctest: +SKIP
        >>> m.coords.shape, m.method  # doctest: +SKIP
        ((200, 2), 'pca')
    """
    if method not in ("tsne", "pca"):
        raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1)
    colourings = {name: np.asarray(v).reshape(-1) for name, v in colour_by.items()}
    for name, v in colourings.items():
        if len(v) != len(x):
            raise ValueError(f"colour_by[{name!r}] has {len(v)} values for {len(x)} points")
    index = np.flatnonzero(np.all(np.isfinite(x), axis=1))
    dropped = len(x) - len(index)
    if len(index) > max_points:
        index = np.sort(np.random.default_rng(seed).choice(index, max_points, replace=False))
    if len(index) < 3:
        raise ValueError(f"need at least 3 points with finite features, got {len(index)}")
    x = x[index]
    used = "tsne" if method == "tsne" and tsne_available() else "pca"
    if used == "tsne":
        coords = _tsne(x, seed)
        heading, axes_labels = "t-SNE", ("t-SNE 1", "t-SNE 2")
    else:
        coords, ratio = pca_2d(x)
        heading = "PCA" if method == "pca" else "PCA (t-SNE needs scikit-learn, not installed)"
        axes_labels = (f"PC1 ({ratio[0]:.0%} var)", f"PC2 ({ratio[1]:.0%} var)")
    categorical = set(categorical or ())
    cmaps = dict(cmaps or {})
    panels = list(colourings) or [""]
    fig = _figure(4.6 * len(panels), 4.2)
    import matplotlib

    for j, name in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), j + 1)
        size = max(2.0, min(18.0, 3000.0 / len(index)))
        if not name:
            ax.scatter(coords[:, 0], coords[:, 1], s=size, color="tab:blue", linewidths=0)
        else:
            values = colourings[name][index]
            if name in categorical or _is_categorical(values):
                classes, codes = np.unique(values.astype(str) if values.dtype.kind == "O" else values,
                                           return_inverse=True)  # fmt: skip
                cmap = matplotlib.colormaps[cmaps.get(name, "tab10" if len(classes) <= 10 else "tab20")]
                colours = cmap(codes % cmap.N) if len(classes) <= 20 else cmap(codes / max(len(classes) - 1, 1))
                ax.scatter(coords[:, 0], coords[:, 1], s=size, c=colours, linewidths=0)
                if len(classes) <= 20:
                    handles = [_dot(cmap(i % cmap.N)) for i in range(len(classes))]
                    ax.legend(handles, [str(c) for c in classes], fontsize=6, title=name, title_fontsize=7,
                              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # fmt: skip
                else:
                    ax.text(1.02, 1.0, f"{len(classes)} classes", transform=ax.transAxes, fontsize=7, va="top")
            else:
                values = values.astype(np.float64)
                ok = np.isfinite(values)
                if not ok.all():
                    ax.scatter(coords[~ok, 0], coords[~ok, 1], s=size, color="lightgrey", linewidths=0)
                sc = ax.scatter(coords[ok, 0], coords[ok, 1], s=size, c=values[ok], cmap=cmaps.get(name, "viridis"),
                                linewidths=0)  # fmt: skip
                fig.colorbar(sc, ax=ax, label=name, shrink=0.85)
            ax.set_title(f"coloured by {name}", fontsize=9)
        ax.set_xlabel(axes_labels[0], fontsize=8)
        ax.set_ylabel(axes_labels[1], fontsize=8)
        ax.tick_params(labelsize=7)
    suffix = f", {dropped} non-finite rows left out" if dropped else ""
    fig.suptitle(f"{title + ': ' if title else ''}{heading} of {len(index)} points{suffix}", fontsize=10)
    _save(fig, path)
    return Map2D(coords=coords, index=index, method=used)


def _dot(colour):
    from matplotlib.lines import Line2D

    return Line2D([], [], marker="o", linestyle="", color=colour, markersize=5)


__all__ = ["Map2D", "embedding_map", "pca_2d", "tsne_available"]
