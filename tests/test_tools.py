"""The benchmarks run end to end (in a tiny setting; their figures are read from a full run)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_augment_runs_and_prints_the_ratio():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    args = ["--sizes", "32", "--batch", "16", "--batches", "2", "--warmup", "1", "--repeats", "1"]
    result = subprocess.run(
        [sys.executable, "tools/bench_augment.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ours/theirs" in result.stdout
    row = [line for line in result.stdout.splitlines() if line.strip().startswith("32 |")]
    assert row, result.stdout
    ratio = float(row[0].split("|")[-1])
    assert ratio > 0
