"""Shared helpers for tests that run the main job (`python -m keras_eqssl.cli.train`) in fresh
processes and compare what the runs wrote: losses and every saved array."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import zipfile

import h5py
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT_S = 600
STEPS, EVERY = 24, 4


def train_args(workdir, steps: int, *extra: str) -> list[str]:
    """The main job on a tiny VICReg + reconstruction config (ResNet width 1/16, 32 px, 8 pairs)."""
    return [
        sys.executable,
        "-m",
        "keras_eqssl.cli.train",
        "--config=configs/vicreg_recon.py",
        f"--config.workdir={workdir}",
        "--config.data.source=skimage_photos",
        "--config.data.batch_size=8",
        "--config.data.image_size=48",
        "--config.augment.size=32",
        "--config.model.width=0.0625",
        "--config.model.split=16,16",
        f"--config.train.steps={steps}",
        f"--config.train.checkpoint_every={EVERY}",
        "--config.train.deterministic=True",
        "--config.train.log_every=1",
        "--config.train.progress=False",
        "--config.eval.enabled=False",
        "--config.eval.random_init=False",
        *extra,
    ]


def free_ports(n: int) -> list[int]:
    """`n` TCP ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def env_as_a_user_has_it(**extra) -> dict:
    """This environment without the tests' `TF_ENABLE_ONEDNN_OPTS=0` (conftest.py): oneDNN as the package
    chooses it, on where faster unless the run sets `train.deterministic=True` (as these runs do)."""
    from keras_eqssl.onednn import ONEDNN_VARIABLE, PACKAGE_MARK

    kept = {k: v for k, v in os.environ.items() if k not in (ONEDNN_VARIABLE, PACKAGE_MARK)}
    return {**kept, **extra}


def env(**extra) -> dict:
    # train.deterministic=True (train_args) turns oneDNN off in every process: with it on, separate
    # processes differ by rounding that Adam amplifies (1e-3 after 12 steps).
    env = env_as_a_user_has_it(CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return env


def run_one_process(workdir, steps: int, *extra: str) -> str:
    proc = subprocess.run(
        train_args(workdir, steps, *extra), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def weights(workdir) -> dict[str, np.ndarray]:
    """Every array saved in `workdir/model.keras` (model and optimizer), by its path in the archive."""
    out = {}
    with zipfile.ZipFile(pathlib.Path(workdir) / "model.keras") as archive, archive.open("model.weights.h5") as f:
        with h5py.File(f, "r") as h5:
            h5.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def losses(workdir) -> dict[str, list[float]]:
    return json.loads((pathlib.Path(workdir) / "train_metrics.json").read_text())["history"]


def max_relative_diff(a: dict, b: dict) -> float:
    assert sorted(a) == sorted(b)
    worst = 0.0
    for name in a:
        x, y = np.asarray(a[name], np.float64), np.asarray(b[name], np.float64)
        scale = max(np.max(np.abs(y), initial=0.0), 1e-6)
        worst = max(worst, float(np.max(np.abs(x - y), initial=0.0) / scale))
    return worst
