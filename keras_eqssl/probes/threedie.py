"""SIE's 3DIEBench evaluation on frozen features: relative rotation and colour from a pair of views.

Protocol (Garrido et al., ICML 2023; facebookresearch/SIE `eval_angle_prediction.py`,
`eval_color_prediction.py`), on features of **every** view of every object:

- input: `concat[f(x_i), f(x_j)]` for two distinct views i, j of one object, for each part of
  the representation ("embedding", "invariant", "equivariant"), reported side by side;
- targets: "rotation" = the quaternion (x, y, z, w) of R_i⁻¹R_j (not sign-canonicalised, as SIE);
  "color" = the floor and spot-light hue differences;
- the heads fit on pairs of the train split's objects and score pairs of the val split's objects
  (objects never seen by the heads, nor, for our renders, by pretraining);
- heads: "constant" (always), "linear" (ridge, penalty chosen by cross-validation grouped by
  object) and "mlp" (early-stopped on held-out objects);
- metrics: R² (mean over components, and per component) and SIE's global-mean R².

Each of `repeats` repeats draws `pairs_per_object` ordered pairs per train object (of the
V(V-1) an object has) and a bootstrap sample of the val objects (with all their ordered pairs),
both from `(seed, repeat)`, so every figure is a mean ± std over repeats.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import Encode, check_choices, extract
from keras_eqssl.probes.repeats import (
    Collector,
    check_heads,
    check_repeats,
    fit_regressors,
    predict_2d,
)
from keras_eqssl.probes.results import PARTS, THREEDIE_TARGETS, Score


def object_pairs(objects, pairs_per_object: int | None, seed) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i, j), i != j, of rows that share an object.

    Args:
        objects: (M,) object id of each row.
        pairs_per_object: pairs drawn per object without replacement (None or more than there
            are: all V(V-1)).
        seed: the draw.

    Returns:
        (first rows, second rows), each (P,) int64.

    Example:
    >>> i, j = object_pairs(np.array([0, 0, 0, 1, 1]), None, 0)
    >>> len(i), bool(np.all(i != j))
    (8, True)
    """
    rng = np.random.default_rng(seed)
    firsts, seconds = [], []
    for a, b in _pairs_by_object(objects):
        if pairs_per_object is not None and pairs_per_object < len(a):
            pick = rng.choice(len(a), size=pairs_per_object, replace=False)
            a, b = a[pick], b[pick]
        firsts.append(a)
        seconds.append(b)
    return np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)


def _pairs_by_object(objects) -> list[tuple[np.ndarray, np.ndarray]]:
    """All ordered pairs (i != j) of the rows of each object, one entry per object."""
    objects = np.asarray(objects)
    out = []
    for obj in np.unique(objects):
        rows = np.flatnonzero(objects == obj)
        a, b = np.meshgrid(rows, rows, indexing="ij")
        keep = a != b
        out.append((a[keep], b[keep]))
    if not out:
        raise ValueError("object_pairs: no objects.")
    return out


def threedie_scores(
    train: Mapping,
    val: Mapping,
    *,
    parts: Sequence[str] = PARTS,
    targets: Sequence[str] = ("rotation", "color"),
    heads: Sequence[str] = ("linear",),
    repeats: int = 3,
    pairs_per_object: int = 32,
    seed: int = 0,
    mlp_options: Mapping | None = None,
) -> list[Score]:
    """The probe on features already extracted.

    Args:
        train, val: `{"features": {part: (M, C)}, "latents": (M, 7), "object": (M,)}` of every
            view of the split (see `keras_eqssl.data.threedie_views`).
        parts, targets, heads, repeats, pairs_per_object, seed, mlp_options: see `threedie_probe`.

    Returns:
        `Score`s of probe "3diebench".
    """
    from keras_eqssl.data.threedie_views import relative_targets

    parts = check_choices("part", parts, PARTS)
    targets = check_choices("3DIEBench target", targets, THREEDIE_TARGETS)
    heads = check_heads(heads)
    repeats = check_repeats(repeats)
    if pairs_per_object < 1:
        raise ValueError(f"threedie_probe: pairs_per_object must be >= 1; received {pairs_per_object}.")
    for name, split in (("train", train), ("val", val)):
        if len(np.unique(split["object"])) < 2:
            raise ValueError(f"threedie_probe: the {name} split needs at least 2 objects with 2 views each.")
    val_pairs = _pairs_by_object(val["object"])
    collector = Collector("3diebench")
    for r in range(repeats):
        ti, tj = object_pairs(train["object"], pairs_per_object, [seed, r, 1])
        vi, vj = _bootstrap_pairs(val_pairs, [seed, r, 2])
        y_train = relative_targets(train["latents"][ti], train["latents"][tj])
        y_val = relative_targets(val["latents"][vi], val["latents"][vj])
        groups = train["object"][ti]
        for part in parts:
            ftr, fva = train["features"][part], val["features"][part]
            x_train = np.concatenate([ftr[ti], ftr[tj]], axis=1)
            x_val = np.concatenate([fva[vi], fva[vj]], axis=1)
            for target in targets:
                key, names = THREEDIE_TARGETS[target]
                fitted = fit_regressors(x_train, y_train[key], groups, heads, mlp_options=mlp_options, seed=seed + r)
                for head, model in fitted.items():
                    pred = predict_2d(model, x_val)
                    collector.add_regression(target, part, head, y_val[key], pred, names, with_global=True)
    return collector.scores()


def _bootstrap_pairs(pairs: list, seed) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of a bootstrap sample of the objects (drawn with replacement, all their pairs)."""
    drawn = np.random.default_rng(seed).integers(0, len(pairs), size=len(pairs))
    return np.concatenate([pairs[k][0] for k in drawn]), np.concatenate([pairs[k][1] for k in drawn])


def view_features(encode, views: Mapping, parts: Sequence[str], *, batch_size: int = 256, progress=None, split=""):
    """The features of every view of a split (`data.threedie_views` output), with what the probes
    need beside them: `{"features": {part: (N, C)}, "latents", "object", "label", "group"}` (the
    group of a view is its object)."""
    feats = extract(encode, views["images"], batch_size, parts=list(parts), progress=progress, desc=f"renders {split}")
    return {"features": feats, "latents": views["latents"], "object": views["object"], "label": views["label"],
            "group": views["object"]}  # fmt: skip


def threedie_probe(
    encode: Encode,
    root: str | os.PathLike,
    *,
    parts: Sequence[str] = PARTS,
    targets: Sequence[str] = ("rotation", "color"),
    heads: Sequence[str] = ("linear",),
    repeats: int = 3,
    pairs_per_object: int = 32,
    image_size: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    mlp_options: Mapping | None = None,
    progress: bool | None = None,
) -> list[Score]:
    """SIE's 3DIEBench rotation / colour probes on an encoder (see the module doc).

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}` (`load_encoder(path)`, ...).
        root: a 3DIEBench-format root (the real set, or one our renderer wrote).
        parts: the encoder outputs to probe.
        targets: "rotation" and/or "color".
        heads: "linear" and/or "mlp" (the constant predictor is always scored).
        repeats: repeats (see the module doc); at least 3 for a spread worth reading.
        pairs_per_object: train pairs drawn per object and repeat.
        image_size: resize the renders to S x S before encoding (default: as stored).
        batch_size: images per `encode` call.
        seed: the draws (and the MLP's initial weights).
        mlp_options: `train_mlp` keyword arguments.
        progress: tqdm bars (None: for long extractions).

    Returns:
        A list of `Score`s (probe "3diebench"; metrics "r2", "r2_global"; components in `dim`).

    Example:
    >>> encode = load_encoder("runs/default/export")                              # doctest: +SKIP
    >>> scores = threedie_probe(encode, "/data/3DIEBench", parts=["equivariant"])  # doctest: +SKIP
    >>> one(scores, target="rotation", part="equivariant", head="linear", metric="r2").text()  # doctest: +SKIP
    '0.412 ± 0.015'
    """
    from keras_eqssl.data.threedie_views import threedie_views

    parts = check_choices("part", parts, PARTS)
    splits = {}
    for split in ("train", "val"):
        views = threedie_views(root, split, image_size=image_size)
        splits[split] = view_features(encode, views, parts, batch_size=batch_size, progress=progress, split=split)
    return threedie_scores(
        splits["train"],
        splits["val"],
        parts=parts,
        targets=targets,
        heads=heads,
        repeats=repeats,
        pairs_per_object=pairs_per_object,
        seed=seed,
        mlp_options=mlp_options,
    )
