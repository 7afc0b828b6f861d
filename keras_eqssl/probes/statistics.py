"""The statistics of the results pages: paired differences over seeds, t intervals, Holm–Bonferroni.

Every results page (`tools/compare.py`) states one rule, `RULE`, and applies it through this module:

- a figure of a model is its per-seed values (seed s of every model shares its data order and
  probe draws, so two models are compared seed by seed);
- a difference `a - b` is the mean of the per-seed differences `d_s = a_s - b_s`, shown with its
  95% t interval `mean ± t(0.975, n - 1) * sd(d) / sqrt(n)`;
- its p-value is the paired two-sided t-test's;
- all the differences of one page form one family, and Holm's step-down procedure at
  family-wise error 0.05 decides which are marked: a cell is marked only where the corrected test
  rejects "no difference".

    >>> d = paired_difference([0.61, 0.58, 0.66], [0.50, 0.49, 0.52])
    >>> round(d.mean, 3), d.n
    (0.113, 3)
    >>> holm([0.01, 0.04, 0.03], alpha=0.05)
    [True, False, False]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
"""The confidence level of every interval on a results page."""

ALPHA = 0.05
"""The family-wise error rate of Holm's procedure on a results page."""

RULE = (
    "Each figure is the mean ± standard deviation over training seeds; seed s of every model shares "
    "its data order and probe draws, so models are compared seed by seed. A difference is the mean of "
    "the per-seed differences with its 95% t interval in brackets. Every difference on a page is tested "
    "(paired two-sided t-test), and Holm–Bonferroni across all of them at family-wise error 0.05 "
    "decides which are marked `*`: a marked cell is a difference that survives the correction; an "
    "unmarked one is reported as no difference, whatever its sign."
)
"""The rule in plain words, as every results page and the README state it."""


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided critical value of Student's t with `df` degrees of freedom."""
    return float(stats.t.ppf(0.5 + confidence / 2.0, df))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """`(low, high)`: the t interval of the mean of `values` (at least 2 finite values)."""
    x = _finite(values, "t_interval")
    if len(x) < 2:
        raise ValueError(f"t_interval needs at least 2 values; got {len(x)}.")
    half = t_quantile(confidence, len(x) - 1) * float(np.std(x, ddof=1)) / math.sqrt(len(x))
    mean = float(np.mean(x))
    return mean - half, mean + half


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """`a - b` over paired seeds: the per-seed differences, their mean, interval and t-test.

    Attributes:
        a: per-seed values of the first model, `(n,)`.
        b: per-seed values of the second, in the same seed order, `(n,)`.
    """

    a: tuple
    b: tuple

    def __post_init__(self):
        a, b = _finite(self.a, "a"), _finite(self.b, "b")
        if len(a) != len(b) or len(a) < 2:
            raise ValueError(
                f"PairedDifference needs the same number (>= 2) of seeds on both sides; got {len(a)} and {len(b)}."
            )
        object.__setattr__(self, "a", tuple(float(v) for v in a))
        object.__setattr__(self, "b", tuple(float(v) for v in b))

    @property
    def differences(self) -> np.ndarray:
        """`a_s - b_s` per seed."""
        return np.subtract(self.a, self.b)

    @property
    def n(self) -> int:
        return len(self.a)

    @property
    def mean(self) -> float:
        return float(np.mean(self.differences))

    @property
    def sd(self) -> float:
        """Sample standard deviation of the per-seed differences."""
        return float(np.std(self.differences, ddof=1))

    def interval(self, confidence: float = CONFIDENCE) -> tuple[float, float]:
        """`(low, high)`: the t interval of the mean difference."""
        return t_interval(self.differences, confidence)

    @property
    def p_value(self) -> float:
        """The paired two-sided t-test's p-value (0 when every seed differs by the same non-zero amount)."""
        if self.sd == 0.0:
            return 1.0 if self.mean == 0.0 else 0.0
        t = self.mean / (self.sd / math.sqrt(self.n))
        return float(2.0 * stats.t.sf(abs(t), self.n - 1))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> PairedDifference:
    """`a - b` paired by position (seed s of both)."""
    return PairedDifference(tuple(a), tuple(b))


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's adjusted p-values, in the order given: `max_{j <= i} min(1, (m - j) p_(j))` over the
    sorted p-values (ranks from 0), mapped back to each test."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"holm: p-values must be a 1-D list of numbers in [0, 1]; got {p_values!r}")
    order = np.argsort(p, kind="stable")
    m = len(p)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise error `alpha`."""
    return [q <= alpha for q in holm_adjusted(p_values)]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One tested difference of a family: the difference, its interval, raw and Holm p-values."""

    difference: PairedDifference
    low: float
    high: float
    p_value: float
    p_holm: float
    marked: bool

    @property
    def mean(self) -> float:
        return self.difference.mean

    def text(self, decimals: int = 3) -> str:
        """`"+0.120 [+0.080, +0.160] *"`: the mean difference, its interval, `*` where Holm rejects."""
        mark = " *" if self.marked else ""
        return f"{self.mean:+.{decimals}f} [{self.low:+.{decimals}f}, {self.high:+.{decimals}f}]{mark}"


def family_verdicts(differences: Mapping, alpha: float = ALPHA, confidence: float = CONFIDENCE) -> dict:
    """`{key: Verdict}` for a family of `{key: PairedDifference}`, Holm-corrected together."""
    keys = list(differences)
    adjusted = holm_adjusted([differences[k].p_value for k in keys]) if keys else []
    out = {}
    for key, q in zip(keys, adjusted):
        d = differences[key]
        low, high = d.interval(confidence)
        out[key] = Verdict(d, low, high, d.p_value, q, q <= alpha)
    return out


def _finite(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.any(~np.isfinite(x)):
        raise ValueError(f"{name}: every value must be finite; got {list(x)}")
    return x
