"""Shared helpers for training tests: load a config file and shrink it to a tiny, fast run."""

from __future__ import annotations

import contextlib
import pathlib
from unittest import mock

from keras_eqssl.cli._config import load_config_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
# The method configs of `keras-eqssl-train` (configs/common.py holds the recipes they share).
CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob("*.py") if p.stem != "common" and not p.stem.startswith("_"))


def load_config(name: str):
    """`configs/<name>.py`'s `get_config()`."""
    return load_config_file(CONFIG_DIR / f"{name}.py")


def tiny(config, workdir, threedie_root, steps: int = 20, every: int = 10):
    """The same method and objectives at toy scale: ResNet-18 at width 1/16 (32 channels), 32 px views."""
    config.workdir = str(workdir)
    config.data.threedie.root = str(threedie_root)
    config.data.batch_size = 16
    config.data.image_size = 48
    config.augment.size = 32
    config.model.width = 0.0625
    if tuple(config.model.split) != (0, 0):
        config.model.split = (16, 16)
    config.train.steps = steps
    config.train.checkpoint_every = every
    config.train.image_every = every
    config.train.log_every = 5
    config.train.progress = False
    config.eval.enabled = False  # the probes have their own tests; the main-job test runs them once
    config.eval.random_init = False
    return config


@contextlib.contextmanager
def mock_prepared_tfds(num_examples: int):
    """tfds's mock data, with the builders reporting prepared (mock_data fakes the reading, not the files)."""
    import tensorflow_datasets as tfds

    with (
        tfds.testing.mock_data(num_examples=num_examples),
        mock.patch.object(tfds.core.DatasetBuilder, "is_prepared", return_value=True),
    ):
        yield
