"""Test setup: quiet TensorFlow and pin the Keras backend before anything imports TensorFlow."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A fresh, fixed NumPy generator per test."""
    return np.random.default_rng(0)
