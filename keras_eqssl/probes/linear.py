"""Linear heads on frozen features, closed form, with the penalty chosen by grouped cross-validation.

- `fit_ridge(x, y, groups)`: ridge regression on features standardised with the training rows'
  statistics; the penalty `alpha` is chosen from `ALPHAS` by `GroupKFold` cross-validation (R²),
  so no group (an object, a photo) is ever in both a fold's training and validation rows. It is
  scikit-learn's `GridSearchCV(Pipeline([StandardScaler(), Ridge()]), cv=GroupKFold)`, computed
  from one eigendecomposition per fold (about 20x faster; a test checks both agree).
- `fit_ridge_classifier(x, y, groups)`: the linear classifier (one-hot ridge, scikit-learn's
  `RidgeClassifier`), the penalty chosen the same way by accuracy. Logistic regression with a
  grouped search took ~140 s per part on 2,300 renders x 128 features; this takes well under 1 s.
- `fit_constant(y)`: the constant predictor (the training mean, or the most frequent class); the
  row every probe table prints, since a head that scores below it has overfitted.

All return a fitted model with `predict`. scikit-learn provides the folds (`GroupKFold`) and the
scores (`r2_score`).

Example:
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(400, 16)); y = x[:, :2] @ [[1.0, 0.5], [-2.0, 1.0]]
>>> groups = np.arange(400) // 4
>>> head = fit_ridge(x[:300], y[:300], groups[:300])
>>> from sklearn.metrics import r2_score
>>> r2_score(y[300:], head.predict(x[300:])) > 0.99
True
"""

from __future__ import annotations

import numpy as np

ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 17))
"""Ridge penalties searched (on standardised features: from almost none to the constant predictor)."""


def _check(x, y, groups, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    groups = np.asarray(groups)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"{where}: features must be (N, C) with N >= 2; received shape {x.shape}.")
    if len(y) != len(x) or len(groups) != len(x):
        raise ValueError(
            f"{where}: features, targets and groups need the same length; received {len(x)}, {len(y)}, {len(groups)}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{where}: features contain NaN or Inf.")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise ValueError(f"{where}: targets contain NaN or Inf.")
    return x, y, groups


def _folds(groups: np.ndarray, folds: int, where: str):
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"{where}: grouped cross-validation needs at least 2 groups; received {n_groups}.")
    return GroupKFold(n_splits=min(folds, n_groups))


class RidgeHead:
    """A ridge regression on standardised features: `predict(x) = ((x - mean) / scale) @ coef + intercept`.

    Attributes:
        alpha: the penalty chosen by cross-validation (inf: the constant predictor won).
        cv_scores: (len(alphas),) mean cross-validated R² of each penalty.
    """

    def __init__(self, mean, scale, coef, intercept, alpha, cv_scores):
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept
        self.alpha = float(alpha)
        self.cv_scores = cv_scores

    def predict(self, x) -> np.ndarray:
        """(M, C) features -> (M, D) predictions."""
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.coef + self.intercept


def _standardise(x):
    """StandardScaler's statistics: mean and population std (1 where a column is constant)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0))), scale, 1.0)


def _ridge_path(x, y, alphas):
    """Ridge solutions for every alpha from one eigendecomposition: of the (C, C) Gram matrix
    Z^T Z, or of the (N, N) kernel Z Z^T when there are fewer rows than features (the same
    solutions, since (Z^T Z + a I)^-1 Z^T = Z^T (Z Z^T + a I)^-1). Returns
    (mean, scale, coefs (A, C, D), intercept)."""
    mean, scale = _standardise(x)
    z = (x - mean) / scale
    y_mean = y.mean(axis=0)
    centred = y - y_mean
    if len(z) < z.shape[1]:
        eigenvalues, vectors = np.linalg.eigh(z @ z.T)
        eigenvalues = np.maximum(eigenvalues, 0.0)
        projected = vectors.T @ centred
        coefs = np.stack([z.T @ (vectors @ (projected / (eigenvalues + a)[:, None])) for a in alphas])
        return mean, scale, coefs, y_mean
    eigenvalues, vectors = np.linalg.eigh(z.T @ z)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    projected = vectors.T @ (z.T @ centred)
    coefs = np.stack([vectors @ (projected / (eigenvalues + a)[:, None]) for a in alphas])
    return mean, scale, coefs, y_mean


def fit_ridge(x, y, groups, *, alphas=ALPHAS, folds: int = 5, score=None, constant_candidate: bool = True) -> RidgeHead:
    """Ridge on standardised features; `alpha` by `GroupKFold` cross-validated R².

    The same model as scikit-learn's `GridSearchCV(Pipeline([StandardScaler(), Ridge()]),
    {"ridge__alpha": alphas}, cv=GroupKFold(folds), scoring="r2")` (`tests/test_probes.py` checks
    it), computed from one eigendecomposition per fold instead of one solve per fold and penalty.
    With `constant_candidate`, the train mean (alpha = inf) is one more candidate: when no
    penalty predicts held-out groups better than it, the head is the constant predictor, so a
    head that cannot generalise across groups scores about 0 rather than below it.

    Args:
        x: (N, C) features.
        y: (N,) or (N, D) targets (one shared alpha; R² averaged over the D outputs).
        groups: (N,) group ids: rows of one group stay on one side of every fold.
        alphas: penalties to search.
        folds: at most this many folds (fewer when there are fewer groups).
        score: `score(y_true, y_pred) -> float` to maximise (default sklearn's `r2_score`).

    Returns:
        A `RidgeHead`: `predict(x) -> (M, D)`.
    """
    from sklearn.metrics import r2_score

    score = score or r2_score
    x, y, groups = _check(x, y, groups, "fit_ridge")
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    alphas = np.asarray(alphas, np.float64)
    scores = np.zeros(len(alphas))
    splits = list(_folds(groups, folds, "fit_ridge").split(x, y, groups))
    for train, test in splits:
        mean, scale, coefs, y_mean = _ridge_path(x[train], y[train], alphas)
        z = (x[test] - mean) / scale
        scores += [score(y[test], z @ c + y_mean) for c in coefs]
    scores /= len(splits)
    best = int(np.argmax(scores))  # GridSearchCV's choice: the first best mean score
    mean, scale, coefs, y_mean = _ridge_path(x, y, alphas[best : best + 1])
    if constant_candidate:
        constant = np.mean([score(y[test], np.broadcast_to(y[train].mean(0), y[test].shape)) for train, test in splits])
        if constant > scores[best]:
            return RidgeHead(mean, scale, np.zeros_like(coefs[0]), y_mean, np.inf, scores)
    return RidgeHead(mean, scale, coefs[0], y_mean, alphas[best], scores)


class RidgeClassifierHead:
    """`predict(x) -> (M,)` labels: the argmax of a `RidgeHead` fitted to one-hot labels."""

    def __init__(self, ridge: RidgeHead, classes: np.ndarray):
        self.ridge, self.classes = ridge, classes
        self.alpha = ridge.alpha

    def predict(self, x) -> np.ndarray:
        return self.classes[np.argmax(self.ridge.predict(x), axis=1)]


def fit_ridge_classifier(x, y, groups, *, alphas=ALPHAS, folds: int = 5) -> RidgeClassifierHead:
    """A linear classifier in closed form: ridge regression of one-hot labels (scikit-learn's
    `RidgeClassifier`), the penalty chosen by `GroupKFold` cross-validated accuracy.

    Args:
        x: (N, C) features.
        y: (N,) integer labels.
        groups: (N,) group ids (rows of one group stay on one side of every fold).
        alphas, folds: as `fit_ridge`.

    Returns:
        A `RidgeClassifierHead`: `predict(x) -> (M,)` labels.
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"fit_ridge_classifier: labels must be (N,) integers; received {y.dtype} {y.shape}.")
    classes = np.unique(y)
    onehot = (y[:, None] == classes[None, :]).astype(np.float64) * 2.0 - 1.0  # RidgeClassifier's {-1, 1}

    def accuracy(y_true, y_pred):
        return float(np.mean(np.argmax(y_true, axis=1) == np.argmax(y_pred, axis=1)))

    ridge = fit_ridge(x, onehot, groups, alphas=alphas, folds=folds, score=accuracy)
    return RidgeClassifierHead(ridge, classes)


class ConstantPredictor:
    """Predicts the training targets' mean (regression) or most frequent label (classification).

    `predict(x) -> (M,) or (M, D)`, whatever `x` holds.
    """

    def __init__(self, y, classification: bool = False):
        y = np.asarray(y)
        if len(y) == 0:
            raise ValueError("ConstantPredictor: needs at least one target.")
        if classification:
            values, counts = np.unique(y, return_counts=True)
            self.value = values[np.argmax(counts)]
        else:
            self.value = np.asarray(y, dtype=np.float64).mean(axis=0)

    def predict(self, x) -> np.ndarray:
        return np.broadcast_to(self.value, (len(x), *np.shape(self.value))).copy()


def fit_constant(y, classification: bool = False) -> ConstantPredictor:
    """The constant predictor of `y` (see `ConstantPredictor`)."""
    return ConstantPredictor(y, classification)
