"""`keras-eqssl-train --strategy=multiworker` for real: two worker processes on this machine.

Each worker is the main job with `TF_CONFIG` naming both on 127.0.0.1 ports
(`MultiWorkerMirroredStrategy`, one CPU replica per worker). What must hold:

- equal to one process: the same config trained by one process with two replicas
  (`--strategy=mirrored --cpu_replicas=2`) on the same global batches gives the same losses and
  the same final weights, to 1e-5 relative (per tensor, relative to its largest value);
- the chief alone writes: checkpoints, `model.keras`, the export and TensorBoard come from worker
  0; worker 1 says it writes nothing and leaves no file of its own;
- a worker that dies is reported: worker 1 killed (SIGKILL) once the first checkpoint is on disk
  makes worker 0 exit with status 4 and a message within 180 s (`--health_every=2`: in seconds),
  instead of waiting for it forever;
- resume: both workers restarted after that continue from the checkpoint and end where the
  uninterrupted run ends (losses and weights to 1e-5);
- a worker that never comes: worker 0 started alone with `--cluster_wait=5` exits non-zero
  within 60 s naming the missing task and its address, and a waiting worker ends on SIGTERM.

Every run here is a fresh process (and TensorFlow): the tests are `slow` (about 4 minutes).
"""

from __future__ import annotations

import json
import pathlib
import signal
import socket
import subprocess
import time

import pytest
from run_helpers import (
    ROOT,
    STEPS,
    TIMEOUT_S,
    env,
    free_ports,
    losses,
    max_relative_diff,
    run_one_process,
    train_args,
    weights,
)

pytestmark = pytest.mark.slow

TOL = 1e-5


def start_workers(workdir, steps: int, *extra: str, log_dir=None, workers=(0, 1)) -> list[subprocess.Popen]:
    """Starts the `workers` of a two-worker run (worker 0 is the chief); stdout+stderr go to files.
    Each process gets `.log_path` and `.cluster` (the workers' addresses)."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    log_dir = pathlib.Path(log_dir or workdir).parent
    procs = []
    for index in workers:
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(log_dir / f"{pathlib.Path(workdir).name}.worker{index}.log", "w")  # noqa: SIM115
        args = train_args(workdir, steps, "--strategy=multiworker", "--health_every=2", "--cluster_wait=300", *extra)
        procs.append(
            subprocess.Popen(args, cwd=ROOT, env=env(TF_CONFIG=tf_config), stdout=log, stderr=subprocess.STDOUT)
        )
        procs[-1].log_path, procs[-1].cluster = log.name, cluster["worker"]
    return procs


def wait_all(procs, timeout=TIMEOUT_S) -> list[str]:
    """Waits for every process (killing all on timeout) and returns their logs; asserts exit 0."""
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        raise
    logs = [pathlib.Path(p.log_path).read_text() for p in procs]
    for p, log in zip(procs, logs):
        assert p.returncode == 0, f"worker exited {p.returncode}:\n{log[-4000:]}"
    return logs


def kill_worker_after_first_checkpoint(workdir) -> dict:
    """Starts a multi-worker run, SIGKILLs worker 1 once the chief's first checkpoint is on disk, and
    waits (at most 180 s) for the chief to give up. Returns its exit code, log and reaction time."""
    chief, worker = start_workers(workdir, STEPS)
    index = pathlib.Path(workdir) / "checkpoints" / "checkpoint.json"
    deadline = time.monotonic() + TIMEOUT_S
    while not index.exists() and time.monotonic() < deadline:
        assert worker.poll() is None and chief.poll() is None, pathlib.Path(chief.log_path).read_text()[-3000:]
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    worker.wait()
    try:
        chief.wait(timeout=180)
    except subprocess.TimeoutExpired:
        chief.kill()
        chief.wait()
    return {
        "returncode": chief.returncode,
        "seconds": time.monotonic() - killed,
        "log": pathlib.Path(chief.log_path).read_text(),
        "step": json.loads(index.read_text())["step"],
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The multi-worker run, the same in one process with 2 replicas, and a multi-worker run whose
    worker 1 is killed after the first checkpoint, then restarted (both workers) to the end."""
    root = tmp_path_factory.mktemp("multiworker")
    multi, resumed = root / "multi", root / "resumed"
    logs = wait_all(start_workers(multi, STEPS))
    one = run_one_process(root / "one", STEPS, "--strategy=mirrored", "--cpu_replicas=2")
    killed = kill_worker_after_first_checkpoint(resumed)
    resumed_logs = wait_all(start_workers(resumed, STEPS)) if killed["returncode"] == 4 else None
    return {
        "multi": multi,
        "one": root / "one",
        "resumed": resumed,
        "logs": logs,
        "one_log": one,
        "killed": killed,
        "resumed_logs": resumed_logs,
    }


def test_two_workers_equal_one_process_with_two_replicas(runs):
    assert "2 replica(s) on 2 workers; this is worker 0 (chief" in runs["logs"][0]
    assert "2 replica(s)" in runs["one_log"]
    loss_diff = max_relative_diff(losses(runs["multi"]), losses(runs["one"]))
    weight_diff = max_relative_diff(weights(runs["multi"]), weights(runs["one"]))
    print(f"2 workers vs 1 process x 2 replicas: losses {loss_diff:.2e}, weights {weight_diff:.2e} (relative)")
    assert loss_diff <= TOL and weight_diff <= TOL
    assert len(weights(runs["multi"])) > 50  # the model's and the optimizer's arrays, not an empty file


def test_chief_alone_writes(runs):
    multi = runs["multi"]
    assert "this is worker 1 (writes nothing)" in runs["logs"][1]
    assert "the chief writes the files" in runs["logs"][1]
    assert sorted(p.name for p in (multi / "checkpoints").glob("ckpt-*.keras")), "the chief wrote no checkpoint"
    for name in ("model.keras", "train_metrics.json", "export", "tb"):
        assert (multi / name).exists(), name
    written = {p.relative_to(multi).parts[0] for p in multi.rglob("*")}
    assert written <= {"checkpoints", "tb", "export", "model.keras", "train_metrics.json", ".lock"}, written


def test_a_dead_worker_is_reported(runs):
    killed = runs["killed"]
    print(f"the chief stopped {killed['seconds']:.1f} s after worker 1 was killed (exit {killed['returncode']})")
    assert killed["returncode"] == 4, killed["log"][-3000:]
    assert "a worker of the multi-worker cluster is gone" in killed["log"], killed["log"][-3000:]


def test_resumed_multiworker_run_continues_exactly(runs):
    assert runs["resumed_logs"] is not None, "the killed run did not stop as it should (see the dead-worker test)"
    step = runs["killed"]["step"]
    assert 0 < step < STEPS
    for log in runs["resumed_logs"]:
        assert f"resuming from step {step}" in log
    weight_diff = max_relative_diff(weights(runs["resumed"]), weights(runs["multi"]))
    tail = len(losses(runs["resumed"])["loss"])
    last = {k: v[-tail:] for k, v in losses(runs["multi"]).items()}
    loss_diff = max_relative_diff(losses(runs["resumed"]), last)
    print(f"resumed at step {step} vs uninterrupted, {STEPS} steps: losses {loss_diff:.2e}, weights {weight_diff:.2e}")
    assert loss_diff <= TOL and weight_diff <= TOL


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Waits up to `timeout` s for `proc` to end, then SIGKILLs it (its return code says which)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_worker_that_never_comes_is_named(tmp_path):
    """Worker 0 alone: it gives up after --cluster_wait naming worker 1, instead of waiting forever."""
    (chief,) = start_workers(tmp_path / "alone", STEPS, "--cluster_wait=5", workers=(0,))
    start = time.monotonic()
    _wait_or_kill(chief, 60)
    log = pathlib.Path(chief.log_path).read_text()
    print(f"worker 0 alone exited {chief.returncode} after {time.monotonic() - start:.1f} s")
    assert chief.returncode not in (0, -signal.SIGKILL), f"still waiting after 60 s:\n{log[-3000:]}"
    assert f"/job:worker/replica:0/task:1 at {chief.cluster[1]} never came up within 5 s" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


def test_sigterm_ends_a_waiting_worker(tmp_path):
    """Worker 0 alone, waiting (its port answers) for worker 1: SIGTERM ends it at once."""
    (chief,) = start_workers(tmp_path / "alone", STEPS, "--cluster_wait=300", workers=(0,))
    host, port = chief.cluster[0].split(":")
    deadline = time.monotonic() + 120
    while chief.poll() is None and time.monotonic() < deadline:  # until it waits for its peer
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(2)  # well inside the wait
    assert chief.poll() is None, pathlib.Path(chief.log_path).read_text()[-3000:]
    chief.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _wait_or_kill(chief, 20)
    print(f"SIGTERM ended the waiting worker in {time.monotonic() - sent:.1f} s (exit {chief.returncode})")
    assert chief.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), pathlib.Path(chief.log_path).read_text()[-3000:]
