"""The `--config` flag every app shares, and the check that runs before any work."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from keras_eqssl import default_config  # noqa: E402
from keras_eqssl.config_validation import ConfigError, validate  # noqa: E402

DEFAULT_CONFIG = default_config.__file__


def define_config_flag():
    """`--config=configs/FILE.py` plus `--config.a.b=value` overrides; defaults to the embedded config."""
    return config_flags.DEFINE_config_file(
        "config", default=DEFAULT_CONFIG, help_string="Config file (a Python file with get_config()).", lock_config=True
    )


def checked(config_flag):
    """The loaded config, validated; exits with status 2 and a message naming the field if it is bad."""
    config = config_flag.value
    try:
        validate(config)
    except ConfigError as err:
        path = config_flags.get_config_filename(flags.FLAGS[config_flag.name])
        print(f"error: bad config {path}: {err}", file=sys.stderr)
        sys.exit(2)
    return config
