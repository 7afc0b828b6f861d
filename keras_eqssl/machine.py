"""What machine a figure was measured on: printed with every benchmark table (CPUs differ)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """`"CPU: <model> (<n> cores)"`, the line benchmark tables start with."""
    return f"CPU: {cpu_model()} ({os.cpu_count()} cores)"
