"""Ctrl-C (SIGINT) or SIGTERM during training writes a checkpoint of the step it stopped at and
exits 130 / 143; the rerun resumes from that step, mid-epoch, and ends with the weights of a run
that was never interrupted.

Runs `python -m keras_eqssl.cli.train` (the tiny config of `run_helpers`, 40 steps, a checkpoint
every 4): A uninterrupted; B stopped by SIGTERM as its training starts, B again stopped by SIGINT
just after its next checkpoint, and B a third time to the end.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from run_helpers import ROOT, TIMEOUT_S, env, run_one_process, train_args, weights

from keras_eqssl.checkpoints import checkpoint_files

STEPS = 40  # room for the signals to land mid-run on a loaded machine (a step takes tens of ms)


def _newest(workdir) -> int:
    files = checkpoint_files(workdir / "checkpoints")
    return files[-1][0] if files else 0


def _stop(workdir, signum: int, when) -> tuple[int, str]:
    """Starts B, sends `signum` once `when()` is true, and returns its exit status and stderr."""
    proc = subprocess.Popen(
        train_args(workdir, STEPS),
        cwd=ROOT,
        env=env(PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + TIMEOUT_S
    while proc.poll() is None and not when() and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before the signal: " + proc.stderr.read()[-2000:]
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, err


def _stopped_at(err: str, name: str, workdir) -> int:
    """The step the run says it stopped at; checks it names the checkpoint file of that step."""
    match = re.search(rf"stopped on {name} at step (\d+): wrote checkpoint (\S+);", err)
    assert match, err[-2000:]
    step = int(match.group(1))
    assert match.group(2) == str(workdir / "checkpoints" / f"ckpt-{step:08d}.keras")
    assert _newest(workdir) == step
    assert "Traceback" not in err, err[-2000:]
    return step


@pytest.mark.slow
def test_sigterm_and_ctrl_c_checkpoint_the_current_step_and_resume_to_the_uninterrupted_weights(tmp_path):
    run_one_process(tmp_path / "a", STEPS)
    b = tmp_path / "b"

    # SIGTERM as training starts: the first step ends, is checkpointed (mid-epoch), exit 143
    status, err = _stop(b, signal.SIGTERM, lambda: (b / "tb" / "train").exists())
    assert status == 143, err[-2000:]
    first = _stopped_at(err, "SIGTERM", b)
    assert 0 < first < STEPS, first  # the steps since the last checkpoint are kept (mid-epoch unless a boundary)

    # resumed mid-epoch; Ctrl-C once it wrote its next checkpoint: exit 130 at a later step
    status, err = _stop(b, signal.SIGINT, lambda: _newest(b) > first)
    assert status == 130, err[-2000:]
    second = _stopped_at(err, "SIGINT", b)
    assert first < second < STEPS, (first, second)

    out = run_one_process(b, STEPS)
    assert f"resuming from step {second}" in out
    wa, wb = weights(tmp_path / "a"), weights(b)
    assert sorted(wa) == sorted(wb)
    for name in wa:
        assert (wa[name] == wb[name]).all(), name
