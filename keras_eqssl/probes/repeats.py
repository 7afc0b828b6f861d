"""What the regression probes share: heads fitted per repeat, test groups resampled, scores collected.

A probe runs `repeats` times. Repeat r draws its own training sample and its own test sample
(`bootstrap_groups`: the test groups, objects or photos, drawn with replacement), fits every head
on the training rows and scores the test rows; `Collector` gathers the figure of each repeat
into `Score`s (`keras_eqssl.probes.results`), so every figure carries its spread.

Heads (`fit_regressors`): "constant" (the training mean), "linear" (ridge, penalty by grouped
cross-validation, `keras_eqssl.probes.linear`) and "mlp" (early-stopped on held-out groups,
`keras_eqssl.probes.heads`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from keras_eqssl.probes.r2 import r2_global_mean, r2_per_dim
from keras_eqssl.probes.results import PROBE_HEADS, Score


class Collector:
    """Gathers one value per repeat for each score key; `scores()` turns them into `Score`s."""

    def __init__(self, probe: str):
        self.probe = probe
        self._values: dict[tuple, list[float]] = defaultdict(list)

    def add(self, target: str, part: str, head: str, metric: str, value: float, dim: str = "") -> None:
        self._values[(target, part, head, metric, dim)].append(float(value))

    def add_regression(self, target, part, head, y_true, y_pred, names, with_global: bool = False) -> None:
        """R² (mean over components), R² of each component, and optionally SIE's global-mean R²."""
        per_dim = r2_per_dim(y_true, y_pred)
        self.add(target, part, head, "r2", float(np.mean(per_dim)))
        for name, value in zip(names, per_dim):
            self.add(target, part, head, "r2", value, dim=str(name))
        if with_global:
            self.add(target, part, head, "r2_global", r2_global_mean(y_true, y_pred))

    def scores(self) -> list[Score]:
        return [
            Score(self.probe, target, part, head, metric, tuple(values), dim)
            for (target, part, head, metric, dim), values in self._values.items()
        ]


def check_heads(heads: Sequence[str] | str) -> list[str]:
    """The trained heads asked for, each in `PROBE_HEADS` ("constant" is always added by the probes)."""
    heads = [heads] if isinstance(heads, str) else list(heads)
    unknown = [h for h in heads if h not in PROBE_HEADS]
    if unknown or not heads:
        raise ValueError(f"Unknown probe heads {unknown or heads}; known: {list(PROBE_HEADS)}.")
    return heads


def check_repeats(repeats: int) -> int:
    if int(repeats) < 1:
        raise ValueError(f"repeats must be >= 1; received {repeats}.")
    return int(repeats)


def bootstrap_groups(groups, seed) -> np.ndarray:
    """Row indices of a bootstrap sample of the groups: as many groups as there are, drawn with
    replacement, each bringing all its rows.

    Example:
    >>> rows = bootstrap_groups(np.array([0, 0, 1, 1, 2]), seed=0)
    >>> sorted(set(np.array([0, 0, 1, 1, 2])[rows].tolist())) != []
    True
    """
    groups = np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, len(unique), size=len(unique))
    return np.concatenate([rows_of[g] for g in drawn])


def fit_regressors(x, y, groups, heads: Sequence[str], *, mlp_options: Mapping | None = None, seed: int = 0) -> dict:
    """`{"constant": ..., "linear": ..., "mlp": ...}` (those in `heads`, plus constant), each with
    `predict(x) -> (M, D)`, fitted on `(x, y)` with `groups` for cross-validation / early stopping."""
    from keras_eqssl.probes.heads import train_mlp
    from keras_eqssl.probes.linear import fit_constant, fit_ridge

    y = np.asarray(y, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    fitted = {"constant": fit_constant(y)}
    if "linear" in heads:
        fitted["linear"] = fit_ridge(x, y, groups)
    if "mlp" in heads:
        fitted["mlp"] = train_mlp(x, y, groups, task="regression", seed=seed, **dict(mlp_options or {}))
    return fitted


def predict_2d(head, x) -> np.ndarray:
    out = np.asarray(head.predict(x), np.float64)
    return out[:, None] if out.ndim == 1 else out
