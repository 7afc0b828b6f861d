"""Classification on frozen features: a linear (softmax) probe and a k-nearest-neighbour classifier.

- `linear_top1`: a linear classifier on standardised features (one-hot ridge regression, as
  scikit-learn's `RidgeClassifier`), its penalty chosen by cross-validated accuracy, grouped by
  object or photo (`keras_eqssl.probes.linear.fit_ridge_classifier`).
- `knn_top1`: k = 20 nearest train features by **cosine similarity**, with DINO's
  **similarity-weighted vote** by default (Caron et al. 2021, `eval_knn.py`, after Wu et al.
  2018): neighbour j votes for its class with weight `exp(s_j / T)`, T = 0.07, and the class with
  the largest summed weight wins. `weighting="majority"` counts one vote per neighbour instead
  (ties go to the smallest class index).
- `classification_probe` / `classification_scores`: both, and the constant (most frequent class)
  predictor, for each part of the representation; the spread comes from bootstrap samples of
  the test groups. Too few classes or images: skipped, with the reason (never a perfect score).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import Encode, check_choices, extract
from keras_eqssl.probes.results import CLASS_TARGET, CLASSIFIERS, PARTS, Score

WEIGHTINGS = ("similarity", "majority")
METHODS = tuple(c for c in CLASSIFIERS if c != "constant")  # the trained classifiers


def _check_labels(y, n: int, what: str) -> np.ndarray:
    """Integer labels (n,), n >= 1, as int64; a ValueError naming `what` otherwise."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n or n == 0:
        raise ValueError(f"{what}: labels must be (N,), one per image, N >= 1; received {y.shape} for {n} images.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers; received dtype {y.dtype}.")
    return y.astype(np.int64)


def _check_labelled(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{what}: features must be (N, C) and labels (N,), N >= 1; received {x.shape} and {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers; received dtype {y.dtype}.")
    return x, y.astype(np.int64)


def knn_predict(
    train_x,
    train_y,
    test_x,
    *,
    k: int = 20,
    weighting: str = "similarity",
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """kNN labels of `test_x` from `(train_x, train_y)` by cosine similarity (see the module doc).

    Args:
        train_x: (N, C) features; train_y: (N,) int labels in [0, K).
        test_x: (M, C) features.
        k: neighbours (capped at N).
        weighting: "similarity" (`exp(sim / temperature)` per neighbour, DINO) or "majority".
        temperature: T of the similarity weights.
        num_classes: K (default max label + 1).
        batch_size: test rows per similarity block (memory: batch_size x N floats).

    Returns:
        (M,) int64 predicted labels.
    """
    train_x, train_y = _check_labelled(train_x, train_y, "knn")
    test_x = np.asarray(test_x, dtype=np.float32)
    if test_x.ndim != 2 or test_x.shape[1] != train_x.shape[1]:
        raise ValueError(f"knn: test features must be (M, {train_x.shape[1]}); received {test_x.shape}.")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"knn: weighting must be one of {WEIGHTINGS}; received {weighting!r}.")
    if k < 1 or temperature <= 0:
        raise ValueError(f"knn: need k >= 1 and temperature > 0; received k={k}, temperature={temperature}.")
    num_classes = int(num_classes or train_y.max() + 1)
    k = min(int(k), len(train_x))

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    train_n, test_n = unit(train_x), unit(test_x)
    out = np.empty(len(test_n), np.int64)
    for start in range(0, len(test_n), batch_size):
        sims = test_n[start : start + batch_size] @ train_n.T  # (b, N)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (b, k), unordered
        top_sims = np.take_along_axis(sims, top, axis=1)
        if weighting == "similarity":
            weights = np.exp((top_sims - 1.0) / temperature)  # exp(s/T) up to a constant factor
        else:
            weights = np.ones_like(top_sims)
        votes = np.zeros((len(top), num_classes), np.float64)
        np.add.at(votes, (np.arange(len(top))[:, None], train_y[top]), weights)
        out[start : start + batch_size] = votes.argmax(axis=1)
    return out


def knn_top1(train_x, train_y, test_x, test_y, **knn_options) -> float:
    """Top-1 accuracy (in [0, 1]) of `knn_predict` (its keyword arguments: `knn_options`) on `(test_x, test_y)`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16))
    >>> y = np.repeat(np.arange(3), 50); x = centres[y] + 0.01 * rng.normal(size=(150, 16))
    >>> knn_top1(x[::2], y[::2], x[1::2], y[1::2])
    1.0
    """
    test_x, test_y = _check_labelled(test_x, test_y, "knn_top1")
    return float(np.mean(knn_predict(train_x, train_y, test_x, **knn_options) == test_y))


def linear_top1(train_x, train_y, test_x, test_y, train_groups=None) -> float:
    """Top-1 accuracy (in [0, 1]) of a linear classifier (one-hot ridge, penalty by grouped CV).

    Args:
        train_x, train_y: (N, C) features and (N,) int labels.
        test_x, test_y: (M, C) and (M,).
        train_groups: (N,) groups for the cross-validation (default: each row its own group).

    Example:
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 40); x = rng.normal(size=(3, 8))[y] + 0.1 * rng.normal(size=(120, 8))
    >>> linear_top1(x[::2], y[::2], x[1::2], y[1::2])
    1.0
    """
    from keras_eqssl.probes.linear import fit_ridge_classifier

    train_x, train_y = _check_labelled(train_x, train_y, "linear_top1")
    test_x, test_y = _check_labelled(test_x, test_y, "linear_top1")
    groups = np.arange(len(train_y)) if train_groups is None else np.asarray(train_groups)
    head = fit_ridge_classifier(train_x, train_y, groups)
    return float(np.mean(head.predict(test_x) == test_y))


def skip_reason(train_y, test_y, min_per_class: int = 2) -> str | None:
    """Why a classification probe on these labels would say nothing (None when it can run)."""
    classes = np.unique(train_y)
    if len(classes) < 2:
        return f"classification skipped: the training images have {len(classes)} class (need at least 2)."
    counts = np.bincount(np.searchsorted(classes, train_y))
    if counts.min() < min_per_class:
        return f"classification skipped: a class has {counts.min()} training image(s) (need {min_per_class})."
    if len(test_y) < 2 * len(classes):
        return f"classification skipped: {len(test_y)} test images for {len(classes)} classes."
    return None


def classification_scores(
    train: Mapping,
    test: Mapping,
    *,
    parts: Sequence[str] = PARTS,
    methods: Sequence[str] = METHODS,
    repeats: int = 3,
    k: int = 20,
    weighting: str = "similarity",
    temperature: float = 0.07,
    seed: int = 0,
) -> tuple[list[Score], list[str]]:
    """Top-1 of the constant (most frequent class), linear and kNN classifiers, per part.

    Args:
        train, test: `{"features": {part: (N, C)}, "label": (N,), "group": (N,)}`; the train
            groups drive the linear classifier's cross-validation, the test groups the bootstrap.
        parts, methods: which parts, and "linear" and/or "knn".
        repeats: bootstrap samples of the test groups; each figure is a mean ± std over them.
        k, weighting, temperature: the kNN classifier's (see the module doc).
        seed: the bootstrap draws.

    Returns:
        (`Score`s of probe "classification", target "class", metric "top1"; reasons it was skipped).
    """
    from keras_eqssl.probes.linear import fit_constant, fit_ridge_classifier
    from keras_eqssl.probes.repeats import bootstrap_groups, check_repeats

    parts = check_choices("part", parts, PARTS)
    methods = check_choices("classification method", methods, METHODS)
    repeats = check_repeats(repeats)
    train_y, test_y = np.asarray(train["label"]), np.asarray(test["label"])
    reason = skip_reason(train_y, test_y)
    if reason:
        return [], [reason]
    draws = [bootstrap_groups(test["group"], [seed, r, 3]) for r in range(repeats)]
    scores = []
    for part in parts:
        x_train, x_test = train["features"][part], test["features"][part]
        predictions = {"constant": fit_constant(train_y, classification=True).predict(x_test)}
        if "linear" in methods:
            predictions["linear"] = fit_ridge_classifier(x_train, train_y, train["group"]).predict(x_test)
        if "knn" in methods:
            predictions["knn"] = knn_predict(
                x_train, train_y, x_test, k=k, weighting=weighting, temperature=temperature,
                num_classes=int(max(train_y.max(), test_y.max()) + 1),
            )  # fmt: skip
        for head, pred in predictions.items():
            values = [float(np.mean(pred[rows] == test_y[rows])) for rows in draws]
            scores.append(Score("classification", CLASS_TARGET, part, head, "top1", tuple(values)))
    return scores, []


def classification_probe(
    encode: Encode,
    train: tuple,
    test: tuple,
    *,
    parts: Sequence[str] = PARTS,
    methods: Sequence[str] = METHODS,
    repeats: int = 3,
    k: int = 20,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[list[Score], list[str]]:
    """Linear-probe and kNN top-1 of an encoder on labelled train / test images.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}`.
        train, test: `(images uint8 (N, H, W, 3), labels (N,))` or `(images, labels, groups)`
            (groups: the object or photo of each image; default each image its own group).
        parts, methods, repeats, k, seed: see `classification_scores`.
        batch_size: images per `encode` call.
        progress: tqdm bars.

    Returns:
        (`Score`s, reasons the probe was skipped).

    Example:
    >>> scores, skipped = classification_probe(encode, (xa, ya), (xb, yb))   # doctest: +SKIP
    """
    sets = []
    for what, data in (("train", train), ("test", test)):
        images = np.asarray(data[0])
        labels = _check_labels(data[1], len(images), f"classification_probe ({what})")
        groups = np.asarray(data[2]) if len(data) > 2 else np.arange(len(labels))
        feats = extract(encode, images, batch_size, parts=parts, progress=progress, desc=what)
        sets.append({"features": feats, "label": labels, "group": groups})
    return classification_scores(sets[0], sets[1], parts=parts, methods=methods, repeats=repeats, k=k, seed=seed)
