"""Devices for `tools/bench_train.py --devices`: the GPU header line, one device or all, and peak memory.

- `parse_devices("1,all")` -> `["1", "all"]`: the device settings a table has rows for (`"1"`: one
  device, `"all"`: every visible GPU, `"<n>"`: the first n);
- `gpu_line()`: `"GPU: 2 x NVIDIA H100 80GB HBM3 (compute capability 9.0)"`, or that none is visible;
- `strategy_for(setting)`: `OneDeviceStrategy` on the first GPU (without GPUs: the CPU) for `"1"`,
  `MirroredStrategy` over all GPUs (without GPUs: over the logical CPU devices) for `"all"`;
- `reset_peak(devices)` / `peak_memory(devices)`: on GPUs the most bytes TensorFlow's allocator held
  at once since the reset (`tf.config.experimental.get_memory_info(...)["peak"]`, the largest over
  the devices); on a CPU the process's peak resident set (Linux `VmHWM`, reset through
  `/proc/self/clear_refs`), which is the whole process's, not a device's.

>>> parse_devices("1, all,2")
['1', 'all', '2']
"""

from __future__ import annotations

import functools
import resource
import sys

import tensorflow as tf

GIB = 1024**3
GPU_PEAK = "peak GPU memory"  # what `peak_memory` measured, as the tables label it
CPU_PEAK = "peak RSS (process, CPU)"


def parse_devices(text: str) -> list[str]:
    """The device settings of `--devices`: `"1"`, `"all"` or a positive count, in order, without repeats.

    Raises:
        ValueError: an item that is neither `all` nor a positive integer, or an empty list.
    """
    out = []
    for item in (part.strip().lower() for part in text.split(",")):
        if not item:
            continue
        if item != "all" and not (item.isdigit() and int(item) >= 1):
            raise ValueError(f"--devices: {item!r} is neither 'all' nor a positive number of devices")
        if item not in out:
            out.append(item)
    if not out:
        raise ValueError("--devices is empty; e.g. --devices 1,all")
    return out


def gpus() -> list:
    """The physical GPUs TensorFlow sees (none where `CUDA_VISIBLE_DEVICES` hides them)."""
    return tf.config.list_physical_devices("GPU")


def gpu_line() -> str:
    """`"GPU: 1 x NVIDIA H100 80GB HBM3 (compute capability 9.0)"`, one part per model; or none visible."""
    counts: dict[str, int] = {}
    for device in gpus():
        details = tf.config.experimental.get_device_details(device)
        name = details.get("device_name", device.name)
        capability = details.get("compute_capability")
        if capability:
            name += f" (compute capability {'.'.join(str(c) for c in capability)})"
        counts[name] = counts.get(name, 0) + 1
    if not counts:
        return "GPU: none visible (the rows run on the CPU)"
    return "GPU: " + ", ".join(f"{n} x {name}" for name, n in counts.items())


def split_cpu(n: int) -> None:
    """Splits the CPU into `n` logical devices (for `all` without GPUs); call before TensorFlow starts."""
    if n > 1 and not gpus():
        from keras_eqssl.distribute import configure_logical_cpus

        configure_logical_cpus(n)


@functools.cache
def strategy_for(setting: str) -> tf.distribute.Strategy:
    """The strategy of a device setting (see the module docstring); build and compile inside its scope.

    One per setting and process: a second `MirroredStrategy` in a process reuses the first one's
    collective keys, and its models' cross-replica BatchNorm then fails with a shape mismatch.

    Raises:
        RuntimeError: `"<n>"` with fewer than n devices.
    """
    kind = "GPU" if gpus() else "CPU"
    devices = [d.name for d in tf.config.list_logical_devices(kind)]
    if setting == "1":
        return tf.distribute.OneDeviceStrategy(devices[0])
    count = len(devices) if setting == "all" else int(setting)
    if count > len(devices):
        raise RuntimeError(f"--devices {setting}: only {len(devices)} {kind} device(s) visible")
    return tf.distribute.MirroredStrategy(devices[:count])


def strategy_devices(strategy: tf.distribute.Strategy) -> list[str]:
    """The device names a strategy computes on, e.g. `["/job:localhost/replica:0/task:0/device:GPU:0"]`."""
    return list(strategy.extended.worker_devices)


def _is_gpu(device: str) -> bool:
    return "GPU" in device.upper().rsplit("/", 1)[-1]


def _short(device: str) -> str:
    """`"GPU:0"` from `"/job:localhost/replica:0/task:0/device:GPU:0"`."""
    return device.rsplit("device:", 1)[-1]


def _clear_peak_rss() -> bool:
    """Resets the process's peak resident set (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    """The process's peak resident set: `VmHWM` from /proc/self/status, else `ru_maxrss`."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak(devices: list[str]) -> None:
    """Starts a new peak: every GPU's allocator statistics, or the process's peak RSS on a CPU."""
    gpu_devices = [_short(d) for d in devices if _is_gpu(d)]
    for device in gpu_devices:
        tf.config.experimental.reset_memory_stats(device)
    if not gpu_devices:
        _clear_peak_rss()


def peak_memory(devices: list[str]) -> dict:
    """`{"peak_bytes", "peak_what"}` since `reset_peak(devices)`: the largest GPU peak over `devices`
    (`GPU_PEAK`), or the process's peak RSS (`CPU_PEAK`) where they are CPUs."""
    gpu_devices = [_short(d) for d in devices if _is_gpu(d)]
    if gpu_devices:
        peak = max(tf.config.experimental.get_memory_info(d)["peak"] for d in gpu_devices)
        return {"peak_bytes": int(peak), "peak_what": GPU_PEAK}
    return {"peak_bytes": _peak_rss_bytes(), "peak_what": CPU_PEAK}


def memory_cell(row: dict) -> str:
    """A table cell: the row's peak in GiB, `"n/a"` where it has none."""
    peak = row.get("peak_bytes")
    return "n/a" if peak is None else f"{peak / GIB:.2f}"
