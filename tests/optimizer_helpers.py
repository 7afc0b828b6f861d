"""Shared helpers for the optimizer tests: a small random problem and a loop that applies its gradients."""

from __future__ import annotations

import keras
import numpy as np


def random_problem(steps: int = 10, seed: int = 0, scale: float = 1.0):
    """Weights `[(4, 3), (3,)]` and `steps` lists of gradients for them (normal, times `scale`)."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=(4, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")]
    grads = [[(scale * rng.normal(size=w.shape)).astype("float32") for w in weights] for _ in range(steps)]
    return weights, grads


def run_optimizer(optimizer, weights, grads, names=None) -> list[np.ndarray]:
    """Applies `grads` step by step to variables made from `weights` (named `names`); returns them."""
    variables = [keras.Variable(w, name=(names[i] if names else f"w{i}")) for i, w in enumerate(weights)]
    for g in grads:
        optimizer.apply_gradients(zip(g, variables))
    return [np.asarray(v) for v in variables]
