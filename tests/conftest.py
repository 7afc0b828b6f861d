"""Test fixtures (the environment, set before TensorFlow is imported, is in the repository's conftest.py)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, fixed NumPy generator per test."""
    return np.random.default_rng(0)
