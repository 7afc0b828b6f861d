"""A training process killed mid-run and restarted continues to the same weights as an uninterrupted run.

Runs `python -m keras_eqssl.cli.train` three times on the photos source with the SimCLR policy
(so augmentation parameters matter): A uninterrupted for 12 steps; B killed with SIGKILL once
its first checkpoint (step 4) is on disk, then B again, which must say it resumes from the last
checkpoint's step and end with weights and optimizer state equal to A's. Training runs with
`train.deterministic=True` (TensorFlow op determinism) and batch k is a pure function of k, so
the comparison is exact on CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from train_helpers import ROOT

import keras_eqssl.methods  # noqa: F401  (registers PairModel and its layers for load_model)

STEPS, EVERY = 12, 4
ARGS = [
    "--config=configs/vicreg_recon.py",
    "--config.data.source=skimage_photos",
    "--config.data.num_images=64",
    "--config.data.image_size=48",
    "--config.data.batch_size=8",
    "--config.augment.size=32",
    "--config.model.width=0.0625",
    "--config.model.split=(16,16)",
    f"--config.train.steps={STEPS}",
    f"--config.train.checkpoint_every={EVERY}",
    "--config.train.progress=False",
    "--config.train.deterministic=True",
]


def _command(workdir):
    return [sys.executable, "-m", "keras_eqssl.cli.train", *ARGS, f"--config.workdir={workdir}"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _run(workdir):
    result = subprocess.run(_command(workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _kill_after_first_checkpoint(workdir):
    index = workdir / "checkpoints" / "checkpoint.json"
    proc = subprocess.Popen(_command(workdir), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if index.exists() and json.loads(index.read_text())["step"] >= EVERY:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return json.loads(index.read_text())["step"]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path):
    _run(tmp_path / "a")
    killed_at = _kill_after_first_checkpoint(tmp_path / "b")
    assert EVERY <= killed_at < STEPS
    out = _run(tmp_path / "b")
    assert f"resuming from step {killed_at}" in out
    assert f"trained steps {killed_at}..{STEPS}" in out

    a = keras.models.load_model(tmp_path / "a" / "model.keras")
    b = keras.models.load_model(tmp_path / "b" / "model.keras")
    assert int(b.optimizer.iterations.numpy()) == STEPS
    for wa, wb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
    # and training did move the weights (the comparison is not between two untouched models)
    fresh = keras.models.load_model(tmp_path / "b" / "model.keras")
    assert any(not np.array_equal(w.numpy(), 0 * w.numpy()) for w in fresh.optimizer.variables[2:])
