"""The `--config` flag every app shares, and the check that runs before any work."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys

try:  # a crash inside TensorFlow's C++ (SIGSEGV, SIGABRT) still prints where Python was
    faulthandler.enable()
except (AttributeError, OSError, ValueError):  # a stderr without a file descriptor (captured, in a test)
    pass
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from keras_eqssl import default_config  # noqa: E402
from keras_eqssl.config_validation import validate  # noqa: E402
from keras_eqssl.errors import (
    ConfigError,
    InputError,  # noqa: E402
)

DEFAULT_CONFIG = default_config.__file__


def define_config_flag():
    """`--config=configs/FILE.py` plus `--config.a.b=value` overrides; defaults to the embedded config."""
    try:  # the default file is loaded (and command-line overrides applied to it) right here
        return config_flags.DEFINE_config_file(
            "config",
            default=DEFAULT_CONFIG,
            help_string="Config file (a Python file with get_config()).",
            lock_config=True,
        )
    except COMMAND_LINE_ERRORS as err:
        _bad_command_line(err)


def checked(config_flag):
    """The loaded config, validated; exits with status 2 and a message naming the field if it is bad."""
    try:
        config = config_flag.value
        config.keys()  # ml_collections loads the file and applies the overrides lazily: fail here
    except COMMAND_LINE_ERRORS as err:
        _bad_command_line(err)
    try:
        validate(config)
    except ConfigError as err:
        path = config_flags.get_config_filename(flags.FLAGS[config_flag.name])
        print(f"error: bad config {path}: {err}", file=sys.stderr)
        sys.exit(2)
    return config


@contextlib.contextmanager
def input_errors_exit(status: int = 2):
    """Inside it, an `InputError` (a bad config field, file, data root, checkpoint; see
    `keras_eqssl.errors`) is one line on stderr and exit `status`; `KERAS_EQSSL_DEBUG=1` keeps the
    traceback. Any other exception is a bug and keeps its traceback."""
    try:
        yield
    except InputError as err:
        _exit_one_line(err, " ".join(str(err).split()), status)


COMMAND_LINE_ERRORS = (flags.Error, OSError, SyntaxError, AttributeError, KeyError, TypeError, ValueError)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing for `app.run(main, flags_parser=parse_flags)`: a bad command line is one
    line on stderr and exit status 2, not a traceback (see `_bad_command_line`); so is a config file
    without `get_config` or whose `get_config` raises (see `check_config_file`)."""
    file = _config_file_argument(argv)
    if file:
        try:
            check_config_file(file)
        except InputError as err:
            _exit_one_line(err, str(err), 2)
    try:
        return flags.FLAGS(argv)
    except COMMAND_LINE_ERRORS as err:
        _bad_command_line(err)


class ConfigFileError(InputError, ValueError):
    """A `--config` file that does not define `get_config()`, or whose `get_config()` raises."""


def check_config_file(argument: str) -> None:
    """Loads the config file of `--config=FILE.py[:ARGS]` and calls its `get_config(ARGS)` once,
    raising `ConfigFileError` (the file, the line in it, the exception) when that fails. A file that
    is not there is left to the flag's own error."""
    import traceback

    path, *args = argument.split(":")  # as ml_collections reads it: FILE.py:ARG1:ARG2
    if not os.path.isfile(path):
        return
    try:
        module = config_module(path, "keras_eqssl_checked_config")
        if not callable(getattr(module, "get_config", None)):
            raise ConfigFileError(
                f"config file {path} defines no get_config(): a config file is a Python file with a function "
                "get_config() that returns an ml_collections.ConfigDict (see configs/ for examples)"
            )
        module.get_config(*args)
    except ConfigFileError:
        raise
    except Exception as err:  # anything the user's file raises: say where in it
        here = os.path.abspath(path)
        frames = [f for f in traceback.extract_tb(err.__traceback__) if os.path.abspath(f.filename) == here]
        where = f" at line {frames[-1].lineno}" if frames else ""
        if isinstance(err, SyntaxError) and err.lineno:
            where = f" at line {err.lineno}"
        what = " ".join(str(err).split()) or "(no message)"
        raise ConfigFileError(f"config file {path} fails to load{where}: {type(err).__name__}: {what}") from err


def config_module(path, name: str = "keras_eqssl_config"):
    """The module of config file `path`, run with the folder above its folder importable (`allow_package_imports`)."""
    import importlib.util

    allow_package_imports(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config_file(path, *args):
    """`get_config(*args)` of config file `path` (e.g. `configs/simclr.py`), as `--config=path` loads it."""
    return config_module(path).get_config(*args)


def allow_package_imports(path) -> None:
    """Puts the folder above config file `path`'s folder on `sys.path` (at the end), so that the files in
    `configs/` import their shared recipes as `from configs.common import method_config`; for a file in
    a package nested in packages (`configs/papers/FILE.py`), the folder above the outermost one too."""
    folder = os.path.dirname(os.path.abspath(path))
    roots = [os.path.dirname(folder)]
    while all(os.path.isfile(os.path.join(f, "__init__.py")) for f in (folder, os.path.dirname(folder))):
        folder = os.path.dirname(folder)
        roots.append(os.path.dirname(folder))
    for root in roots:
        if root not in sys.path:
            sys.path.append(root)


def _config_file_argument(argv: list[str]) -> str:
    """The value of `--config=...` (or `--config ...`) in `argv`, or ""."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith(("--config=", "-config=")):
            return arg.split("=", 1)[1]
        if arg in ("--config", "-config") and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def deterministic_on_command_line(argv: list[str]) -> bool:
    """Whether `argv` sets `--config.train.deterministic` to true (read before TensorFlow is imported;
    a config file that sets it is seen only once loaded, see `keras_eqssl.onednn`).

    >>> deterministic_on_command_line(["keras-eqssl-train", "--config.train.deterministic=True"])
    True
    >>> deterministic_on_command_line(["keras-eqssl-train", "--config.train.deterministic=false"])
    False
    """
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--config.train.deterministic="):
            value = arg.split("=", 1)[1]
        elif arg == "--config.train.deterministic":
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else "true"
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def _bad_command_line(err: Exception):
    """A config file that is missing or does not load, an unknown config key, a value that does
    not parse: one line and exit 2. `KERAS_EQSSL_DEBUG=1` shows the traceback instead."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (AttributeError, KeyError)):
        text = f"unknown config key {text} (look at the config file or keras_eqssl/default_config.py)"
    _exit_one_line(err, f"bad command line: {text}", 2)


def _exit_one_line(err: Exception, text: str, status: int):
    """`error: text` on stderr and exit `status`; with `KERAS_EQSSL_DEBUG=1`, `err` with its traceback instead."""
    if os.environ.get("KERAS_EQSSL_DEBUG"):
        raise err
    print(f"error: {text}", file=sys.stderr)
    sys.exit(status)
