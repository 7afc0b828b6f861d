"""The absl apps, run as a user runs them: in a subprocess, as `python -m keras_eqssl.cli.NAME`."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(name, *args, timeout=240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(
        [sys.executable, "-m", f"keras_eqssl.cli.{name}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize("config", ["simclr", "stl", "gtsa"])
def test_views_writes_a_png(tmp_path, config):
    out = tmp_path / f"{config}.png"
    result = run_cli("views", f"--config=configs/{config}.py", f"--out={out}", "--rows=2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000  # images and text, not an empty canvas


def test_bad_override_fails_before_work_and_names_the_field(tmp_path):
    out = tmp_path / "never.png"
    result = run_cli("views", "--config=configs/simclr.py", "--config.augment.jitter.p=1.5", f"--out={out}")
    assert result.returncode == 2
    assert "config.augment.jitter.p=1.5" in result.stderr and "probability" in result.stderr
    assert not out.exists()


def test_unknown_override_key_is_named():
    result = run_cli("views", "--config=configs/simclr.py", "--config.augment.jiter.p=0.5")
    assert result.returncode != 0
    assert "jiter" in result.stderr


def test_train_main_job_runs_and_says_what_it_did(tmp_path):
    result = run_cli(
        "train", "--config=configs/simclr.py", "--config.train.steps=3", "--config.data.batch_size=8",
        f"--config.workdir={tmp_path}", "--config.train.progress=False",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "not implemented yet" in result.stdout  # honest about what it does
    assert "source images/s" in result.stdout
    assert (tmp_path / "views.png").read_bytes()[:8] == PNG_MAGIC
