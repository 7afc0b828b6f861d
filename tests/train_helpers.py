"""Shared helpers for training tests: load a config file and shrink it to a tiny, fast run."""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"


def load_config(name: str):
    """`configs/<name>.py`'s `get_config()`."""
    path = CONFIG_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


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
