"""The CLIs start TensorFlow without its CUDA probe lines on a machine with no NVIDIA GPU, and keep every other line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from run_helpers import ROOT, env

from keras_eqssl.cli import _quiet

PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
NO_DRIVER = "I0000 00:00:1.0 1 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n"
CU_INIT = (
    "E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)\n"
)
OTHER = "W0000 00:00:1.0 1 some_kernel.cc:7] an op ran out of memory\n"


def test_the_probe_lines_and_their_preamble_go_and_every_other_line_stays():
    lines = [PREAMBLE, NO_DRIVER, "a Python warning\n", PREAMBLE, CU_INIT, OTHER, PREAMBLE, OTHER]
    assert _quiet.drop_cuda_probe_lines(lines) == ["a Python warning\n", OTHER, PREAMBLE, OTHER]


def test_lines_without_probes_are_kept_as_they_are():
    lines = [OTHER, "Traceback (most recent call last):\n", "  no newline at the end"]
    assert _quiet.drop_cuda_probe_lines(lines) == lines


def _write_to_fd2(text: str):
    os.write(2, text.encode())


@pytest.mark.parametrize("gpu", [False, True])
def test_fd2_is_filtered_only_without_a_gpu(capfd, monkeypatch, gpu):
    monkeypatch.setattr(_quiet, "has_nvidia_gpu", lambda: gpu)
    with _quiet.quiet_cuda_probe():
        _write_to_fd2(PREAMBLE + NO_DRIVER + OTHER)
        print("from Python", file=sys.stderr, flush=True)
    err = capfd.readouterr().err
    assert OTHER in err and "from Python" in err
    assert ("cuda drivers" in err) == gpu and (PREAMBLE in err) == gpu


def test_held_lines_come_back_when_the_block_raises(capfd, monkeypatch):
    monkeypatch.setattr(_quiet, "has_nvidia_gpu", lambda: False)
    with pytest.raises(RuntimeError), _quiet.quiet_cuda_probe():
        _write_to_fd2(CU_INIT + OTHER)
        raise RuntimeError("boom")
    err = capfd.readouterr().err
    assert err == OTHER


def test_cuda_visible_devices_minus_one_means_no_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert not _quiet.has_nvidia_gpu()


@pytest.mark.slow  # a fresh process imports TensorFlow: seconds
def test_a_cli_start_prints_no_cuda_probe_line():
    proc = subprocess.run(
        [sys.executable, "-m", "keras_eqssl.cli.views", "--help"],
        cwd=ROOT,
        env=env(),  # CUDA_VISIBLE_DEVICES=-1: no GPU, whatever the machine has
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "--rows" in proc.stdout, proc.stdout + proc.stderr  # absl's --help exits 1 after the flags
    for probe in ("cuInit", "Could not find cuda drivers", "absl::InitializeLog"):
        assert probe not in proc.stderr, proc.stderr
