"""Pictures of probe results: R² bars, model comparisons, reconstruction grids and 2-D embedding maps.

Inputs are plain dicts (the format in `keras_eqssl.probes.report`) and NumPy arrays. Figures are
drawn on matplotlib's Agg canvas without pyplot, so nothing here changes the process's backend or
needs a display, and nothing imports TensorFlow. matplotlib is imported when a plot is drawn.

Example:
    >>> from keras_eqssl.probes import plots
    >>> plots.r2_bars(results, "r2_params.png", probe="params", head="linear")  # doctest: +SKIP
    'r2_params.png'
    >>> grid = plots.reconstruction_grid(targets, recons, "recon.png", mean=0.5, std=0.25)  # doctest: +SKIP
    >>> grid.shape  # doctest: +SKIP
    (130, 526, 3)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from keras_eqssl.probes.report import (
    HEADS,
    PARAM_FAMILIES,
    PARTS,
    THREEDIE_TARGETS,
    dim_names,
    key_metrics,
    key_numbers,
    ordered,
    target_mean,
)

DPI = 120
PAD = 2
"""Pixels of white between the cells of `reconstruction_grid`'s composed image."""


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def model_colours(models: Sequence[str]) -> dict[str, Any]:
    """One colour per model, stable by position (tab10, tab20 beyond ten models)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def _bars(ax, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], colours, *,
          floor: float | None, top: float | None, decimals: int = 2) -> None:  # fmt: skip
    """Grouped bars: a group per label, a bar per series, each labelled with its value.

    None is "not measured": no bar, no label. NaN is "measured, undefined": no bar, labelled "nan".
    The y axis runs from min(0, lowest value, clipped at `floor`) to `top` (None: the highest value
    plus room for the labels); values past either end are drawn at the end, with an arrow.
    """
    n = max(len(series), 1)
    width = 0.8 / n
    x = np.arange(len(labels), dtype=np.float64)
    values = {
        k: np.array([np.nan if v is None else float(v) for v in vs], dtype=np.float64) for k, vs in series.items()
    }
    missing = {k: np.array([v is None for v in vs], dtype=bool) for k, vs in series.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] + [np.zeros(0)])
    low = float(finite.min()) if finite.size else 0.0
    if floor is not None:
        low = max(low, floor)
    bottom = min(0.0, low)
    high = top if top is not None else max(float(finite.max()) * 1.15 if finite.size else 1.0, 1e-9)
    span = high - bottom
    if bottom < 0:
        bottom -= 0.04 * span
        span = high - bottom
    vertical = len(labels) * n > 10
    fontsize = 6 if vertical else 7
    for i, (name, v) in enumerate(values.items()):
        xs = x - 0.4 + width * (i + 0.5)
        shown = np.clip(np.where(np.isfinite(v), v, 0.0), bottom, high)
        ax.bar(xs, shown, width * 0.92, color=colours[name], label=name)
        for xi, si, vi, gone in zip(xs, shown, v, missing[name]):
            if gone:
                continue
            text = "nan" if np.isnan(vi) else f"{vi:.{decimals}f}"
            if np.isfinite(vi) and vi < bottom:
                text += "↓"
            elif np.isfinite(vi) and vi > high:
                text += "↑"
            # Inside the bar's end when there is no room past it, past the end otherwise.
            room = (high - si) if si >= 0 else (si - bottom)
            inside = bool(np.isfinite(vi)) and room < (0.16 if vertical else 0.07) * span
            step = 0.01 * span if si >= 0 else -0.01 * span
            y = si - step if inside else si + step
            va = ("top" if si >= 0 else "bottom") if inside else ("bottom" if si >= 0 else "top")
            ax.text(xi, y, text, ha="center", va=va, fontsize=fontsize, rotation=90 if vertical else 0,
                    color="white" if inside else "black", clip_on=False)  # fmt: skip
    ax.set_xticks(x)
    slanted = len(labels) > 6
    ax.set_xticklabels(labels, rotation=45 if slanted else 0, ha="right" if slanted else "center", fontsize=7)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylim(bottom, high)
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _pick(results: Mapping[str, Any], probe: str, head: str | None) -> str:
    heads = ordered([h for s in results.values() for h in (s.get(probe) or {})], HEADS)
    if not heads:
        raise ValueError(f"no model has {probe!r} results")
    if head is None:
        return heads[0]
    if head not in heads:
        raise ValueError(f"no model has {probe!r} results for head {head!r}; heads: {heads}")
    return head


def _per_dim(scores: Mapping[str, Any] | None) -> list[float | None]:
    values = None if scores is None else scores.get("r2_per_dim")
    if values is None:
        return []
    return [None if v is None else float(v) for v in np.asarray(values, dtype=object).ravel()]


def r2_bars(
    results: Mapping[str, Any],
    path: str | os.PathLike,
    probe: str = "params",
    head: str | None = None,
    *,
    floor: float | None = -1.0,
    title: str | None = None,
) -> str:
    """A grouped bar chart of R², one colour per model, each bar labelled with its value.

    - probe="params": a group per (family, parameter) of the head, plus a family mean when the
      family has several parameters.
    - probe="threedie": a subplot per part (embedding, invariant, equivariant); a group per target
      dim plus each target's mean (and SIE's global mean where recorded).

    The y axis runs from min(0, lowest R²) to 1. R² below `floor` (None: no floor) is drawn at the
    floor, labelled with its value and an arrow, so one diverged probe does not flatten the rest.
    NaN bars are empty and labelled "nan".

    Args:
        results: the results dict (`keras_eqssl.probes.report`).
        path: the PNG to write. probe: "params" or "threedie".
        head: which head (default: "linear" if any model has it, else the first found).

    Returns:
        `path`.

    Example:
        >>> r = {"a": {"params": {"linear": {"blur": {"sigma": 0.9}, "hue": {"hue": 0.3}}}}}
        >>> r2_bars(r, "/tmp/r2.png", probe="params")  # doctest: +SKIP
        '/tmp/r2.png'
    """
    if probe not in ("params", "threedie"):
        raise ValueError(f"probe must be 'params' or 'threedie', got {probe!r}")
    head = _pick(results, probe, head)
    colours = model_colours(list(results))  # by position among all models: the same colour in every plot
    by_model = {m: ((s.get(probe) or {}).get(head) or {}) for m, s in results.items()}
    by_model = {m: v for m, v in by_model.items() if v}  # models without this probe and head get no bars
    models = list(by_model)
    if probe == "params":
        families = ordered([f for fams in by_model.values() for f in fams], PARAM_FAMILIES)
        groups: list[tuple[str, str]] = []
        for family in families:
            names = list(dict.fromkeys(p for fams in by_model.values() for p in (fams.get(family) or {})))
            groups += [(family, p) for p in names]
            if len(names) > 1:
                groups.append((family, "(mean)"))
        series = {}
        for m in models:
            row = []
            for family, name in groups:
                values = by_model[m].get(family)
                if values is None:
                    row.append(None)
                elif name == "(mean)":
                    present = [float(v) for v in values.values() if v is not None]
                    row.append(float(np.mean(present)) if present else None)
                else:
                    v = values.get(name)
                    row.append(None if v is None else float(v))
            series[m] = row
        labels = [p if p == f else f"{f}: {p}" for f, p in groups]
        fig = _figure(max(6.0, 0.22 * len(labels) * max(len(models), 2) + 2.0), 4.2)
        ax = fig.add_subplot()
        _bars(ax, labels, series, colours, floor=floor, top=1.0)
        ax.set_ylabel("R²")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.suptitle(title or f"Augmentation-parameter R² ({head} probe)", fontsize=10)
        return _save(fig, path)

    parts = ordered([p for ps in by_model.values() for p in ps], PARTS)
    short = {"rel_rotation": "rot", "rel_color": "col"}
    panels = []
    for part in parts:
        scores_of = {m: (by_model[m].get(part) or {}) for m in models}
        targets = ordered([t for sc in scores_of.values() for t in sc], tuple(THREEDIE_TARGETS))
        labels, keys = [], []
        for t in targets:
            n = max(len(_per_dim(sc.get(t))) for sc in scores_of.values())
            for i, d in enumerate(dim_names(t, n)):
                labels.append(f"{short.get(t, t)} {d}")
                keys.append((t, i))
            labels.append(f"{short.get(t, t)} mean")
            keys.append((t, "r2_mean"))
            if any(target_mean(sc[t], "r2_global_mean") is not None for sc in scores_of.values() if sc.get(t)):
                labels.append(f"{short.get(t, t)} global")
                keys.append((t, "r2_global_mean"))
        series = {}
        for m in models:
            row = []
            for t, i in keys:
                scores = scores_of[m].get(t)
                if scores is None:
                    row.append(None)
                elif isinstance(i, str):
                    row.append(target_mean(scores, i))
                else:
                    per_dim = _per_dim(scores)
                    row.append(per_dim[i] if i < len(per_dim) else None)
            series[m] = row
        panels.append((part, labels, series))
    width = max(len(labels) for _, labels, _ in panels)
    fig = _figure(max(6.0, 0.2 * width * max(len(models), 2) + 2.0), 2.6 * len(parts) + 0.6)
    for j, (part, labels, series) in enumerate(panels):
        ax = fig.add_subplot(len(parts), 1, j + 1)
        _bars(ax, labels, series, colours, floor=floor, top=1.0)
        ax.set_ylabel(f"R² ({part})", fontsize=8)
        if j == 0:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.suptitle(title or f"3DIEBench relative rotation and colour R² (SIE protocol, {head} head)", fontsize=10)
    return _save(fig, path)


def comparison_bars(
    results: Mapping[str, Any],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
) -> str:
    """Key numbers side by side: a small panel per metric with a bar per model.

    Args:
        results: the results dict. path: the PNG to write.
        metrics: `key_numbers` keys to show (default: every key number some model has).
            R² and accuracy panels run from min(0, lowest) to 1; time panels from 0.

    Returns:
        `path`.

    Example:
        >>> comparison_bars(results, "cmp.png", metrics=["rotation_r2", "knn_top1"])  # doctest: +SKIP
        'cmp.png'
    """
    numbers = key_numbers(results)
    available = {m.key: m for m in key_metrics(numbers)}
    keys = list(available) if metrics is None else list(metrics)
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise ValueError(f"no model has the metrics {unknown}; available: {list(available)}")
    if not keys:
        raise ValueError("no key numbers to compare")
    models = list(results)
    colours = model_colours(models)
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig = _figure(max(2.2 * cols + 1.6, 0.35 * len(models) * cols + 1.6), 2.4 * rows + 0.4)
    for i, key in enumerate(keys):
        metric = available[key]
        ax = fig.add_subplot(rows, cols, i + 1)
        values = [numbers[m].get(key) for m in models]
        top = 1.0 if metric.kind in ("r2", "accuracy") else None
        series = {m: [v] for m, v in zip(models, values)}
        if metric.kind == "seconds":
            series = {m: [None if v is None else v / 60.0] for m, v in zip(models, values)}
        _bars(ax, [""], series, colours, floor=-1.0 if metric.kind == "r2" else None, top=top,
              decimals=1 if metric.kind == "seconds" else 3)  # fmt: skip
        ax.set_xticks([])
        ax.set_title(metric.label + (" (min)" if metric.kind == "seconds" else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    handles = [_patch(colours[m]) for m in models]
    fig.legend(handles, models, loc="outside right upper", fontsize=7, frameon=False)
    fig.suptitle(title or "Key numbers by model", fontsize=10)
    return _save(fig, path)


def _patch(colour):
    from matplotlib.patches import Patch

    return Patch(color=colour)


# --------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# 2-D maps
# --------------------------------------------------------------------------------------------------


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


__all__ = [
    "Map2D",
    "comparison_bars",
    "denormalise",
    "embedding_map",
    "model_colours",
    "pca_2d",
    "r2_bars",
    "reconstruction_grid",
    "tsne_available",
]
