"""Classification on frozen features: a linear (softmax) probe and a k-nearest-neighbour classifier.

- `linear_top1`: a Keras softmax head (`keras_eqssl.probes.heads.train_head`, standardised inputs,
  Adam, early stopping on 10% of the train set), top-1 accuracy on the test set.
- `knn_top1`: k = 20 nearest train features by **cosine similarity**, with DINO's
  **similarity-weighted vote** by default (Caron et al. 2021, `eval_knn.py`, after Wu et al.
  2018): neighbour j votes for its class with weight `exp(s_j / T)`, T = 0.07, and the class with
  the largest summed weight wins. `weighting="majority"` counts one vote per neighbour instead
  (ties go to the smallest class index).
- `classification_probe`: both, for each part of the representation, from an encoder and two
  labelled image sources.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.features import PARTS, Encode, check_choices, extract
from keras_eqssl.probes.heads import train_head

WEIGHTINGS = ("similarity", "majority")
METHODS = ("linear", "knn")


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


def knn_top1(
    train_x,
    train_y,
    test_x,
    test_y,
    *,
    k: int = 20,
    weighting: str = "similarity",
    temperature: float = 0.07,
    num_classes: int | None = None,
    batch_size: int = 1024,
) -> float:
    """Top-1 accuracy (in [0, 1]) of `knn_predict` on `(test_x, test_y)`.

    Example:
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 16))
    >>> y = np.repeat(np.arange(3), 50); x = centres[y] + 0.01 * rng.normal(size=(150, 16))
    >>> knn_top1(x[::2], y[::2], x[1::2], y[1::2])
    1.0
    """
    test_x, test_y = _check_labelled(test_x, test_y, "knn_top1")
    pred = knn_predict(
        train_x,
        train_y,
        test_x,
        k=k,
        weighting=weighting,
        temperature=temperature,
        num_classes=num_classes,
        batch_size=batch_size,
    )
    return float(np.mean(pred == test_y))


def linear_top1(train_x, train_y, test_x, test_y, **head_kwargs) -> float:
    """Top-1 accuracy (in [0, 1]) of a softmax linear head trained on `(train_x, train_y)`.

    Args:
        train_x, train_y: (N, C) features and (N,) int labels.
        test_x, test_y: (M, C) and (M,).
        **head_kwargs: `train_head` options (`epochs`, `num_classes`, `hidden_units` for an MLP,
            `seed`, ...).

    Example:
    >>> acc = linear_top1(train_feats, train_labels, test_feats, test_labels, epochs=50)  # doctest: +SKIP
    """
    train_x, train_y = _check_labelled(train_x, train_y, "linear_top1")
    test_x, test_y = _check_labelled(test_x, test_y, "linear_top1")
    head_kwargs.setdefault("num_classes", int(max(train_y.max(), test_y.max()) + 1))
    head = train_head(train_x, train_y, task="classification", **head_kwargs)
    return float(np.mean(head.predict(test_x).argmax(axis=1) == test_y))


def _labelled_features(encode, data, what, batch_size, parts, cache, model_key, data_key, progress):
    """(features {part: (N, C)}, labels (N,)) of labelled images: (images, labels) arrays or a dataset."""
    if isinstance(data, tuple) and len(data) == 2:
        images, labels = data
        feats = extract(
            encode,
            np.asarray(images),
            batch_size,
            parts=parts,
            cache=cache,
            model_key=model_key,
            data_key=data_key,
            progress=progress,
            desc=what,
        )
        return feats, np.asarray(labels)
    out = extract(
        encode,
        data,
        batch_size,
        parts=parts,
        cache=cache,
        model_key=model_key,
        data_key=data_key,
        progress=progress,
        desc=what,
    )
    if "image" not in out or "label" not in out:
        raise ValueError(f"classification_probe: {what} elements need 'image' and 'label'; they have {sorted(out)}.")
    return out["image"], out["label"]


def classification_probe(
    encode: Encode,
    train,
    test,
    *,
    parts: Sequence[str] = PARTS,
    methods: Sequence[str] = METHODS,
    k: int = 20,
    weighting: str = "similarity",
    temperature: float = 0.07,
    head_options: Mapping | None = None,
    batch_size: int = 256,
    cache: str | os.PathLike | None = None,
    model_key: str | None = None,
    data_keys: tuple[str, str] | None = None,
    progress: bool | None = None,
) -> dict:
    """Linear-probe and kNN top-1 of an encoder on labelled train / test images.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}`.
        train, test: `(images uint8 (N, H, W, 3), labels (N,))`, or datasets of
            `{"image", "label"}` (e.g. `skimage_photos`).
        parts: encoder outputs to probe.
        methods: "linear" and/or "knn".
        k, weighting, temperature: the kNN classifier's (see the module doc).
        head_options: `train_head` kwargs of the linear probe.
        batch_size: images per `encode` call.
        cache, model_key: feature cache (see `extract`); data_keys: (train, test) descriptions.
        progress: tqdm bars.

    Returns:
        `{"protocol": "classification", "num_train", "num_test", "k", "weighting", "temperature",
        "results": {part: {"linear_top1": float, "knn_top1": float}}}` (accuracies in [0, 1]).
    """
    parts = check_choices("part", parts, PARTS)
    methods = check_choices("classification method", methods, METHODS)
    keys = data_keys or (None, None)
    train_f, train_y = _labelled_features(
        encode, train, "train", batch_size, parts, cache, model_key, keys[0], progress
    )
    test_f, test_y = _labelled_features(encode, test, "test", batch_size, parts, cache, model_key, keys[1], progress)
    results = {}
    for part in parts:
        results[part] = {}
        if "linear" in methods:
            results[part]["linear_top1"] = linear_top1(
                train_f[part], train_y, test_f[part], test_y, **dict(head_options or {})
            )
        if "knn" in methods:
            results[part]["knn_top1"] = knn_top1(
                train_f[part], train_y, test_f[part], test_y, k=k, weighting=weighting, temperature=temperature
            )
    return {
        "protocol": "classification",
        "num_train": int(len(train_y)),
        "num_test": int(len(test_y)),
        "k": int(k),
        "weighting": weighting,
        "temperature": float(temperature),
        "results": results,
    }
