"""oneDNN on by default where it is faster; off when a run asks to be deterministic.

TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and by itself turns oneDNN on
only for CPUs with AVX-512 VNNI/BF16 or AMX. On an x86-64 CPU with AVX2 and without those, oneDNN's
kernels made a ResNet-18 step 2.1x faster (docs/performance.md), so `import keras_eqssl` sets
`TF_ENABLE_ONEDNN_OPTS=1` there, before TensorFlow is imported. Its one cost: separate processes
no longer compute bit-identical numbers (resume, several workers). `train.deterministic=True`
turns it off again for the run (the training command restarts itself once if TensorFlow was
already imported with it on).

A value the user set is never changed: the package marks the value it set itself in
`KERAS_EQSSL_ONEDNN_DEFAULT` (which child processes inherit), and only a value equal to that mark
is its own.
"""

from __future__ import annotations

import os
import platform
import sys

from keras_eqssl.cpu_info import cpu_flags

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
PACKAGE_MARK = "KERAS_EQSSL_ONEDNN_DEFAULT"


def onednn_is_faster_here() -> bool:
    """Whether this CPU is one where oneDNN measured faster than TensorFlow's Eigen kernels: x86-64 with AVX2.

    >>> isinstance(onednn_is_faster_here(), bool)
    True
    """
    return platform.machine().lower() in ("x86_64", "amd64") and "avx2" in cpu_flags()


def value_set_by_user() -> str | None:
    """`TF_ENABLE_ONEDNN_OPTS` as the user set it, or None when it is unset or the package's own value."""
    value = os.environ.get(ONEDNN_VARIABLE)
    if value is None or value == os.environ.get(PACKAGE_MARK):
        return None
    return value


def choose_onednn(deterministic: bool = False) -> str | None:
    """Sets `TF_ENABLE_ONEDNN_OPTS` for a TensorFlow not imported yet; returns the value set, or None.

    `deterministic=False`: "1" where `onednn_is_faster_here()`, else TensorFlow's own default
    (the variable left unset). `deterministic=True`: "0" (bit-identical numbers across processes).
    Does nothing when the user set the variable or TensorFlow is already imported, and keeps the
    package's own "0" (set for a deterministic run, which a restarted run or its workers inherit).
    """
    if value_set_by_user() is not None or "tensorflow" in sys.modules:
        return None
    if os.environ.get(ONEDNN_VARIABLE) == "0" and not deterministic:
        return None
    value = "0" if deterministic else ("1" if onednn_is_faster_here() else None)
    if value is None:
        os.environ.pop(ONEDNN_VARIABLE, None)
        os.environ.pop(PACKAGE_MARK, None)
        return None
    os.environ[ONEDNN_VARIABLE] = value
    os.environ[PACKAGE_MARK] = value
    return value


def why_onednn() -> str:
    """Who decided oneDNN's state in this process, for the banner: the user, keras_eqssl or TensorFlow."""
    value = os.environ.get(ONEDNN_VARIABLE)
    if value is None:
        return "TensorFlow's default on this CPU"
    if value_set_by_user() is not None:
        return f"{ONEDNN_VARIABLE}={value}"
    if value == "0":
        return f"train.deterministic=True: {ONEDNN_VARIABLE}=0"
    return f"keras_eqssl's default on this CPU: {ONEDNN_VARIABLE}={value}"


def needs_restart_for(deterministic: bool) -> bool:
    """Whether a run asking `deterministic` must restart its process to turn oneDNN off: TensorFlow
    is imported with the package's "1", not the user's."""
    return (
        deterministic
        and "tensorflow" in sys.modules
        and os.environ.get(ONEDNN_VARIABLE) == "1"
        and (value_set_by_user() is None)
    )


def restart_with_onednn_off() -> None:
    """Replaces this process by the same command with `TF_ENABLE_ONEDNN_OPTS=0` (never returns)."""
    os.environ[ONEDNN_VARIABLE] = "0"
    os.environ[PACKAGE_MARK] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
