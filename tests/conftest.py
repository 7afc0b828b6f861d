"""Test setup: quiet TensorFlow and pin the Keras backend before anything imports TensorFlow."""

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["KERAS_BACKEND"] = "tensorflow"
# train.precision="auto" picks bf16 on CPUs with bf16 instructions: the tests pin float32 so that
# their figures do not depend on the machine (tests/test_precision.py checks "auto" itself).
os.environ["KERAS_EQSSL_AUTO_PRECISION"] = "float32"

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    """A fresh, fixed NumPy generator per test."""
    return np.random.default_rng(0)
