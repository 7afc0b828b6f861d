"""Low-label evaluation: top-1 with 1% and 10% of the training labels, several seeds, mean ± std.

For each label fraction and seed, `balanced_subset` draws the same fraction of every class (at
least one image each) from the labelled training images; a classifier trained on that subset
alone is scored on the whole held-out split. The classifiers:

- `"constant"`: the most frequent class of the subset (the chance row);
- `"linear"`: the linear probe on frozen features (`keras_eqssl.probes.linear.fit_ridge_classifier`,
  penalty by cross-validation on the subset);
- `"finetune"` (optional): any `fit_predict(images, labels, test_images, seed) -> labels`, e.g.
  `finetuner(source)`: the trained backbone with a Dense head, fine-tuned end to end
  (`keras_eqssl.export.feature_model`, the recipe of docs/guide/finetuning.md).

`low_label_table(scores)` prints them as a Markdown table, one row per classifier, one column
per label fraction.

Example:
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(4), 100); x = rng.normal(size=(4, 8))[y] + 0.3 * rng.normal(size=(400, 8))
>>> scores = low_label_scores(x[::2], y[::2], x[1::2], y[1::2], fractions=(0.1,), seeds=(0, 1))
>>> [(s.method, s.fraction, s.mean > 0.9) for s in scores]
[('constant', 0.1, False), ('linear', 0.1, True)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from keras_eqssl.probes.classification import _check_labelled, _check_labels
from keras_eqssl.probes.features import Encode, extract
from keras_eqssl.probes.linear import fit_constant
from keras_eqssl.probes.results import Repeated

FRACTIONS = (0.01, 0.1)
SEEDS = (0, 1, 2)
FitPredict = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class LowLabelScore(Repeated):
    """Top-1 of one classifier trained on `fraction` of the labels, one value per seed.

    Attributes:
        method: "constant", "linear" or "finetune".
        fraction: the share of each class's training labels used, in (0, 1].
        values: top-1 on the held-out split, one per seed.
        labels: how many labelled images each seed's subset had.
    """

    method: str
    fraction: float
    values: tuple
    labels: int


def balanced_subset(labels, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of `round(fraction * n_c)` (at least 1) images of each class c, drawn without replacement.

    Example:
    >>> labels = np.repeat([0, 1, 2], [100, 50, 10])
    >>> np.bincount(labels[balanced_subset(labels, 0.1, seed=0)])
    array([10,  5,  1])
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"balanced_subset: fraction must be in (0, 1]; received {fraction}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        picked.append(rng.choice(rows, size=max(1, round(fraction * len(rows))), replace=False))
    return np.sort(np.concatenate(picked))


def _linear_predict(train_x, train_y, test_x) -> np.ndarray:
    from keras_eqssl.probes.linear import fit_ridge_classifier

    if len(np.unique(train_y)) < 2 or len(train_y) < 2:
        return np.full(len(test_x), train_y[0])
    return fit_ridge_classifier(train_x, train_y, np.arange(len(train_y))).predict(test_x)


def _check_fractions(fractions: Sequence[float], seeds: Sequence[int]) -> None:
    if not fractions or not seeds:
        raise ValueError(f"low-label evaluation needs fractions and seeds; received {fractions}, {seeds}")
    for f in fractions:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"low-label evaluation: each fraction must be in (0, 1]; received {f}")


def low_label_scores(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = SEEDS,
    fit_predict: FitPredict | None = None,
    train_images=None,
    test_images=None,
) -> list[LowLabelScore]:
    """Constant and linear-probe top-1 (and `fit_predict`'s) for each label fraction over `seeds`.

    Args:
        train_features, train_labels: `(N, C)` frozen features and `(N,)` int labels to draw from.
        test_features, test_labels: `(M, C)` and `(M,)`, the held-out split every classifier is scored on.
        fractions: shares of each class's labels, in (0, 1] (default 1% and 10%).
        seeds: one subset (and one fine-tuning run) per seed.
        fit_predict: optional `(images, labels, test_images, seed) -> (M,) labels`, run on the
            subset's images (`"finetune"` rows); needs `train_images` and `test_images`.
        train_images, test_images: the images of the rows above (uint8 or [0, 1] floats), only for `fit_predict`.

    Returns:
        `LowLabelScore`s, for each fraction: "constant", "linear" (and "finetune").
    """
    train_x, train_y = _check_labelled(train_features, train_labels, "low_label_scores (train)")
    test_x, test_y = _check_labelled(test_features, test_labels, "low_label_scores (test)")
    _check_fractions(fractions, seeds)
    if fit_predict is not None and (train_images is None or test_images is None):
        raise ValueError("low_label_scores: fit_predict needs train_images and test_images")
    scores = []
    for fraction in fractions:
        subsets = [balanced_subset(train_y, fraction, seed) for seed in seeds]
        predictions = {
            "constant": [fit_constant(train_y[rows], classification=True).predict(test_y) for rows in subsets],
            "linear": [_linear_predict(train_x[rows], train_y[rows], test_x) for rows in subsets],
        }
        if fit_predict is not None:
            images = np.asarray(train_images)
            predictions["finetune"] = [
                np.asarray(fit_predict(images[rows], train_y[rows], np.asarray(test_images), seed))
                for rows, seed in zip(subsets, seeds)
            ]
        for method, preds in predictions.items():
            values = tuple(float(np.mean(p == test_y)) for p in preds)
            scores.append(LowLabelScore(method, float(fraction), values, len(subsets[0])))
    return scores


def low_label_probe(
    encode: Encode,
    train: tuple,
    test: tuple,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seeds: Sequence[int] = SEEDS,
    fit_predict: FitPredict | None = None,
    part: str = "embedding",
    batch_size: int = 256,
    progress: bool | None = False,
) -> list[LowLabelScore]:
    """`low_label_scores` from images: the features of `part` by `encode`, then every fraction and seed.

    Args:
        encode: `encode(uint8 (N, H, W, 3)) -> {part: (N, C)}` (an `Encoder`, `encoder_from_model(model)`).
        train, test: `(images uint8 (N, H, W, 3), labels (N,))`.
        fractions, seeds, fit_predict: see `low_label_scores`.
        part: the part of the representation the linear probe reads.
        batch_size, progress: of the feature extraction.

    Example:
    >>> scores = low_label_probe(load_encoder("runs/x/export"), (xa, ya), (xb, yb))  # doctest: +SKIP
    >>> print(low_label_table(scores))                                               # doctest: +SKIP
    """
    feats = []
    for what, (images, labels) in (("train", train), ("test", test)):
        _check_labels(labels, len(images), f"low_label_probe ({what})")
        feats.append(extract(encode, np.asarray(images), batch_size, parts=[part], progress=progress, desc=what)[part])
    return low_label_scores(
        feats[0], train[1], feats[1], test[1], fractions=fractions, seeds=seeds, fit_predict=fit_predict,
        train_images=train[0], test_images=test[0],
    )  # fmt: skip


def low_label_table(scores: Sequence[LowLabelScore], decimals: int = 3) -> str:
    """A Markdown table: one row per classifier, one column per label fraction (top-1, mean ± std).

    Example:
    >>> print(low_label_table([LowLabelScore("linear", 0.1, (0.5, 0.7), 20)]))
    | top-1 (mean ± std over 2 seeds) | 10% labels (20) |
    |:--|--:|
    | linear | 0.600 ± 0.141 |
    """
    fractions = sorted({s.fraction for s in scores})
    methods = list(dict.fromkeys(s.method for s in scores))
    cell = {(s.method, s.fraction): s for s in scores}
    n_seeds = max(len(s.values) for s in scores)
    labelled = {s.fraction: s.labels for s in scores}
    head = [f"{f * 100:g}% labels ({labelled[f]})" for f in fractions]
    lines = [f"| top-1 (mean ± std over {n_seeds} seeds) | " + " | ".join(head) + " |"]
    lines.append("|:--|" + "--:|" * len(fractions))
    for method in methods:
        row = [cell[method, f].text(decimals) if (method, f) in cell else "" for f in fractions]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def finetuner(
    source,
    *,
    epochs: int = 20,
    head_epochs: int | None = None,
    learning_rate: float = 1e-4,
    head_learning_rate: float = 1e-3,
    batch_size: int = 32,
    batch_norm: str = "inference",
) -> FitPredict:
    """A `fit_predict` that fine-tunes a fresh copy of `source`'s backbone with a Dense head, per call.

    Each call loads `source` anew (a path; the weights are never shared between calls), trains the
    head alone for `head_epochs` (default `epochs`) at `head_learning_rate` with the backbone
    frozen, then everything for `epochs` at `learning_rate` (Adam), and predicts `test_images`.

    Args:
        source: a path `keras_eqssl.export.feature_model` takes (a `.keras` file, checkpoints, a workdir).
        epochs, head_epochs, learning_rate, head_learning_rate, batch_size: the recipe's.
        batch_norm: see `feature_model`.

    Returns:
        `fit_predict(images, labels, test_images, seed) -> (M,) int labels`; images uint8 or in [0, 1].
    """
    import keras

    from keras_eqssl.export.finetune import classifier, feature_model

    def as_float(images):
        images = np.asarray(images)
        return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)

    def fit_predict(images, labels, test_images, seed: int) -> np.ndarray:
        keras.utils.set_random_seed(int(seed))
        features = feature_model(source, batch_norm=batch_norm)
        num_classes = max(int(np.max(labels)) + 1, 2)
        model = classifier(features, num_classes)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        x, y = as_float(images), np.asarray(labels)
        for trainable, lr, n in ((False, head_learning_rate, head_epochs or epochs), (True, learning_rate, epochs)):
            features.trainable = trainable
            model.compile(keras.optimizers.Adam(lr), loss)
            model.fit(x, y, batch_size=batch_size, epochs=n, verbose=0)
        return model.predict(as_float(test_images), batch_size=256, verbose=0).argmax(axis=1)

    return fit_predict
