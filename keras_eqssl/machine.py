"""What machine a figure was measured on: printed with every benchmark table (CPUs differ)."""

from __future__ import annotations

import glob
import os

from keras_eqssl.cpu_info import cpu_flags, cpu_model
from keras_eqssl.onednn import why_onednn


def machine_line() -> str:
    """`"CPU: <model> (<n> cores)"`, the line benchmark tables start with."""
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"


# The instruction-set extensions that decide whether bfloat16 math runs natively on a CPU.
BF16_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16")


def bf16_support() -> dict[str, bool]:
    """`{flag: present}` for `BF16_FLAGS`: without avx512_bf16 or amx_bf16, bfloat16 is emulated in float32."""
    flags = cpu_flags()
    return {flag: flag in flags for flag in BF16_FLAGS}


def cpu_features_line() -> str:
    """`"CPU flags: avx512f no, avx512_bf16 no, amx_bf16 no (no bf16 instructions: bfloat16 math is emulated)"`."""
    support = bf16_support()
    if not cpu_flags():
        return "CPU flags: unknown (no /proc/cpuinfo)"
    cells = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in support.items())
    native = support["avx512_bf16"] or support["amx_bf16"]
    what = "bf16 instructions present" if native else "no bf16 instructions: bfloat16 math is emulated"
    return f"CPU flags: {cells} ({what}); {onednn_state()}"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: `taskset`, a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels in this process (imports TensorFlow).

    TensorFlow decides once, when it is imported: `TF_ENABLE_ONEDNN_OPTS=1`/`0` if set, else on only
    for CPUs with AVX-512 VNNI/BF16 or AMX.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # TensorFlow moved it: fall back on the variable
        value = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0")
        return value.strip().lower() in ("1", "true", "yes", "on")


def onednn_state() -> str:
    """`"oneDNN off (TensorFlow's default on this CPU)"`, `"oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)"`, ..."""
    return f"oneDNN {'on' if onednn_enabled() else 'off'} ({why_onednn()})"


def cores_line() -> str:
    """`"using 2 of 2 cores (TensorFlow: 2 intra-op, 2 inter-op threads; oneDNN off (...))"`: what a run uses."""
    import tensorflow as tf

    cores = usable_cores()
    intra = tf.config.threading.get_intra_op_parallelism_threads() or cores
    inter = tf.config.threading.get_inter_op_parallelism_threads() or cores
    threads = f"TensorFlow: {intra} intra-op, {inter} inter-op threads; {onednn_state()}"
    return f"using {cores} of {os.cpu_count()} cores ({threads})"


def has_nvidia_gpu() -> bool:
    """Whether this process may see an NVIDIA GPU: a driver is loaded and `CUDA_VISIBLE_DEVICES` hides none of it.

    No TensorFlow import: it reads `/proc/driver/nvidia` and `/dev/nvidia<N>`.

    >>> has_nvidia_gpu() in (True, False)
    True
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return os.path.exists("/proc/driver/nvidia") or bool(glob.glob("/dev/nvidia[0-9]*"))
