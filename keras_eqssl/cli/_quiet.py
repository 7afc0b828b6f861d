"""TensorFlow's start-up without its CUDA probe lines on a machine with no NVIDIA GPU.

TensorFlow 2.21 prints, from C++ and before its logging is set up (so `TF_CPP_MIN_LOG_LEVEL` does
not stop them), "Could not find cuda drivers on your machine" when it is imported and "failed call
to cuInit: ... UNKNOWN ERROR (303)" when it first lists its devices, each after absl's "All log
messages before absl::InitializeLog() is called are written to STDERR". On a CPU-only machine they
say nothing: `start_tensorflow` imports TensorFlow and initialises its devices with file
descriptor 2 captured, then writes back every other line. With a GPU nothing is captured.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from keras_eqssl.machine import has_nvidia_gpu

# What TensorFlow prints while it looks for CUDA, and its oneDNN notice; nothing else is dropped.
CUDA_PROBE_LINES = re.compile(
    r"Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
    r"|TF-TRT Warning: Could not find TensorRT"
    r"|oneDNN custom operations are on"  # the run's banner says whether oneDNN is on, and why
)
ABSL_PREAMBLE = "All log messages before absl::InitializeLog() is called are written to STDERR"


def drop_cuda_probe_lines(lines: list[str]) -> list[str]:
    """`lines` without TensorFlow's CUDA probe lines, nor absl's preamble line just before one.

    >>> drop_cuda_probe_lines(["WARNING: All log messages before absl::InitializeLog() is called are "
    ...     "written to STDERR\\n", "I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine\\n",
    ...     "W0000 some other warning\\n"])
    ['W0000 some other warning\\n']
    """
    kept = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if CUDA_PROBE_LINES.search(line) or (ABSL_PREAMBLE in line and CUDA_PROBE_LINES.search(following)):
            continue
        kept.append(line)
    return kept


@contextlib.contextmanager
def quiet_cuda_probe() -> Iterator[None]:
    """Inside it, what goes to file descriptor 2 is held and written back on exit without the CUDA probe lines.

    Does nothing where `has_nvidia_gpu()` is true or there is no file descriptor 2 to capture.
    """
    if has_nvidia_gpu():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "surrogateescape").splitlines(keepends=True)
            _write_all(2, "".join(drop_cuda_probe_lines(lines)).encode("utf-8", "surrogateescape"))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def start_tensorflow() -> None:
    """Imports TensorFlow and initialises its devices, without the CUDA probe lines on a machine with no GPU.

    A CLI calls it before anything imports TensorFlow; later imports and device use print no probe lines.
    """
    with quiet_cuda_probe():
        import tensorflow as tf

        tf.config.list_physical_devices()
