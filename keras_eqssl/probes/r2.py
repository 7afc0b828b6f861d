"""Coefficient of determination (R²): per output dimension (sklearn's) and SIE's global-mean variant.

Two definitions are in use in the equivariant-SSL literature, and they give different numbers:

- **per dimension** (`r2_per_dim`, and its mean `r2_mean`): for each column j,
  `R²_j = 1 - Σ_i (y_ij - ŷ_ij)² / Σ_i (y_ij - mean_i(y_ij))²`, exactly
  `sklearn.metrics.r2_score(y, ŷ, multioutput="raw_values")`; `r2_mean` is the plain mean of
  the columns (sklearn's default `multioutput="uniform_average"`). A predictor that outputs each
  column's mean scores 0.
- **global mean** (`r2_global_mean`): the R² that SIE's evaluation scripts compute and report for
  3DIEBench rotation and colour prediction (facebookresearch/SIE, `eval_angle_prediction.py`:
  `r2_score(output, target)` with `target_mean = torch.mean(target)`):
  `R² = 1 - Σ_ij (y_ij - ŷ_ij)² / Σ_ij (y_ij - m)²` with m the mean over **all** elements and
  dimensions. The denominator includes the spread between the column means, so a constant
  predictor that outputs the per-column means already scores > 0 (about 0.23 on 3DIEBench's
  quaternions). Use it to compare with published 3DIEBench numbers.

Constant targets (zero denominator) follow sklearn's default (`force_finite=True`): R² = 1.0
when the prediction is exact (zero numerator), else 0.0, never NaN or -inf.

Only NumPy: importing this module does not load TensorFlow.
"""

from __future__ import annotations

import numpy as np


def _as_2d(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"R²: y_true and y_pred must have the same shape (N,) or (N, D); received {y_true.shape} and {y_pred.shape}."
        )
    if y_true.shape[0] < 2:
        raise ValueError(f"R²: needs at least 2 samples; received {y_true.shape[0]}.")
    if not (np.all(np.isfinite(y_true)) and np.all(np.isfinite(y_pred))):
        raise ValueError("R²: y_true and y_pred must be finite (found NaN or Inf).")
    return y_true, y_pred


def _ratio(ss_res, ss_tot):
    """1 - ss_res / ss_tot, with sklearn's convention where ss_tot == 0 (1.0 if ss_res == 0, else 0.0)."""
    ss_res = np.asarray(ss_res, dtype=np.float64)
    ss_tot = np.asarray(ss_tot, dtype=np.float64)
    constant = ss_tot == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - ss_res / np.where(constant, 1.0, ss_tot)
    return np.where(constant, np.where(ss_res == 0, 1.0, 0.0), out)


def r2_per_dim(y_true, y_pred) -> np.ndarray:
    """R² of each output dimension: sklearn's `r2_score(..., multioutput="raw_values")`.

    Args:
        y_true, y_pred: (N,) or (N, D) arrays, N >= 2.

    Returns:
        (D,) float64; a column with a constant target scores 1.0 if predicted exactly, else 0.0.

    Example:
    >>> import numpy as np
    >>> y = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]])
    >>> r2_per_dim(y, y).tolist()
    [1.0, 1.0]
    >>> r2_per_dim(y, np.tile(y.mean(0), (3, 1))).tolist()
    [0.0, 0.0]
    """
    y_true, y_pred = _as_2d(y_true, y_pred)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    return _ratio(ss_res, ss_tot)


def r2_mean(y_true, y_pred) -> float:
    """Mean of `r2_per_dim`: sklearn's default `r2_score(y_true, y_pred)` (`uniform_average`).

    Example:
    >>> import numpy as np
    >>> r2_mean([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    return float(np.mean(r2_per_dim(y_true, y_pred)))


def r2_global_mean(y_true, y_pred) -> float:
    """SIE's R²: `1 - Σ(y - ŷ)² / Σ(y - m)²`, m the mean of **all** elements of y (one scalar).

    This is what facebookresearch/SIE's `eval_angle_prediction.py` / `eval_color_prediction.py`
    report for 3DIEBench; see the module doc for how it differs from `r2_mean`.

    Args:
        y_true, y_pred: (N,) or (N, D) arrays, N >= 2.

    Returns:
        float; equal to `r2_mean` when D == 1.

    Example:
    >>> import numpy as np
    >>> y = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    >>> round(r2_global_mean(y, np.tile(y.mean(0), (3, 1))), 4)  # per-column means score > 0
    0.974
    """
    y_true, y_pred = _as_2d(y_true, y_pred)
    ss_res = np.sum((y_true - y_pred) ** 2)
    ss_tot = np.sum((y_true - y_true.mean()) ** 2)
    return float(_ratio(ss_res, ss_tot))
