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
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from run_helpers import env_as_a_user_has_it
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
    "--config.eval.enabled=False",  # the probes are not what is tested here (and cost CI minutes)
]


def _command(workdir):
    return [sys.executable, "-m", "keras_eqssl.cli.train", *ARGS, f"--config.workdir={workdir}"]


def _env():
    # oneDNN as the package chooses it: `train.deterministic=True` (ARGS) turns it off, which bit-exact
    # resume needs (the same kernels in every process; docs/performance.md).
    return env_as_a_user_has_it(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _run(workdir):
    result = subprocess.run(_command(workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneDNN off (train.deterministic=True: TF_ENABLE_ONEDNN_OPTS=0)" in result.stdout, result.stdout[-2000:]
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


FAULT_STEPS, FAULT_EVERY, KILLS = 48, 2, 10


def _fault_command(workdir):
    args = [a for a in ARGS if not a.startswith(("--config.train.steps", "--config.train.checkpoint_every"))]
    return [
        sys.executable,
        "-m",
        "keras_eqssl.cli.train",
        *args,
        f"--config.train.steps={FAULT_STEPS}",
        f"--config.train.checkpoint_every={FAULT_EVERY}",
        f"--config.workdir={workdir}",
    ]


def _newest_step(ckpt_dir) -> int:
    from keras_eqssl.checkpoints import checkpoint_files

    files = checkpoint_files(ckpt_dir)
    return files[-1][0] if files else 0


def _kill_at(workdir, log, kind: str, delay: float, after: int = 1) -> str:
    """Starts a run and SIGKILLs it: `"startup"` `delay` s after it starts; `"training"` `delay` s
    after it wrote `after` new checkpoints; `"write"` inside its second checkpoint write (a
    temporary file is there); `"export"` once an export's temporary directory appears. The last
    three let each killed run make progress. Returns `kind`, or `"ended"` when the run finished first."""
    ckpt = workdir / "checkpoints"
    first = _newest_step(ckpt)
    with open(log, "w") as out:
        env = dict(_env(), PYTHONUNBUFFERED="1")  # its "resuming from step" line is in the log when killed
        proc = subprocess.Popen(_fault_command(workdir), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        start, progressed = time.time(), None
        while proc.poll() is None and time.time() - start < 600:
            if progressed is None and _newest_step(ckpt) >= first + after * FAULT_EVERY:
                progressed = time.time()
            due = {
                "startup": time.time() - start >= delay,
                "training": progressed is not None and time.time() - progressed >= delay,
                "write": _newest_step(ckpt) > first and any(ckpt.glob(".ckpt-*.tmp.keras")),
                "export": any(workdir.glob(".export*.tmp-*")),
            }[kind]
            if due:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return kind
            time.sleep(0.002)
        proc.wait()
    return "ended"


def _checkpoints_are_whole(ckpt_dir) -> list[int]:
    """Every checkpoint file in `ckpt_dir` is a complete .keras archive with its config beside it."""
    import zipfile

    from keras_eqssl.checkpoints import checkpoint_files, config_path

    steps = []
    for step, path in checkpoint_files(ckpt_dir):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, path
            assert {"config.json", "model.weights.h5"} <= set(archive.namelist()), path
        assert json.loads(config_path(path).read_text())["train"]["steps"] == FAULT_STEPS
        steps.append(step)
    return steps


@pytest.mark.slow
def test_runs_killed_at_ten_random_points_end_with_the_uninterrupted_weights(tmp_path):
    """kill -9 at 10 points: 3 while a checkpoint is being written, 2 at a random time during
    start-up, 4 at a random time in training, and last 1 while the encoder is being exported. Each rerun resumes from the newest checkpoint, no
    checkpoint is lost or left half-written, and the end is bit-identical to an uninterrupted run."""
    rng = np.random.default_rng(0)
    reference = subprocess.run(
        _fault_command(tmp_path / "a"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900
    )
    assert reference.returncode == 0, reference.stderr[-3000:]

    workdir, newest, kinds = tmp_path / "b", 0, []
    plan = [*rng.permutation(["write"] * 3 + ["startup"] * 2 + ["training"] * 4), "export"]
    assert len(plan) == KILLS
    for i, kind in enumerate(plan):
        log = tmp_path / f"b{i}.log"
        delay = float(rng.uniform(2.0, 8.0) if kind == "startup" else rng.uniform(0.0, 0.5))
        where = _kill_at(workdir, log, kind, delay, after=int(rng.integers(1, 3)))
        kinds.append(where)
        text = log.read_text()
        if "starting at step" in text or "resuming from step" in text:  # it got as far as building the model
            assert (f"resuming from step {newest}" if newest else "starting at step 0") in text, text[-2000:]
        steps = _checkpoints_are_whole(workdir / "checkpoints")
        assert not steps or steps[-1] >= newest, f"kill {i}: the newest checkpoint went from {newest} to {steps}"
        assert newest == 0 or newest in steps or steps[-1] > newest
        print(f"kill {i}: {where} (planned {kind}); checkpoints before {newest}, after {steps}")
        newest = steps[-1] if steps else 0
    assert kinds == plan, kinds  # every kill landed where it was planned (none found the run ended)
    assert newest >= 14  # the write and training kills each came after a new checkpoint

    final = subprocess.run(_fault_command(workdir), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stderr[-3000:]
    assert not list((workdir / "checkpoints").glob(".*tmp*"))  # the killed writes' leftovers are gone
    a = keras.models.load_model(tmp_path / "a" / "model.keras")
    b = keras.models.load_model(workdir / "model.keras")
    assert int(b.optimizer.iterations.numpy()) == FAULT_STEPS
    for wa, wb in zip(a.weights + a.optimizer.variables, b.weights + b.optimizer.variables):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
