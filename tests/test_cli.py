"""The absl apps, run as a user runs them: in a subprocess, as `python -m keras_eqssl.cli.NAME`."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cli(name, *args, timeout=240, **env_values):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **env_values)
    return subprocess.run(
        [sys.executable, "-m", f"keras_eqssl.cli.{name}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.mark.parametrize(
    "config",
    ["simclr", pytest.param("views/stl", marks=pytest.mark.slow), pytest.param("views/gtsa", marks=pytest.mark.slow)],
)
def test_views_writes_a_png(tmp_path, config):
    out = tmp_path / "views.png"
    result = run_cli(
        "views", f"--config=configs/{config}.py", f"--out={out}", "--rows=2", "--config.data.source=skimage_photos"
    )
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


@pytest.mark.parametrize(
    "args, named",
    [
        (["--config=configs/nope.py"], "configs/nope.py"),  # a config file that is not there
        (["--config.model.nosuch=1"], "nosuch"),  # an unknown key on the command line
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(args, named):
    result = run_cli("train", *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and named in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: bad command line:")


@pytest.mark.parametrize(
    "text, said",
    [
        ("x = 1\n", "defines no get_config()"),
        ("def get_config():\n    raise ValueError('no such dataset')\n", "at line 2: ValueError: no such dataset"),
        ("def get_config():\n    return 1 / 0\n", "at line 2: ZeroDivisionError: division by zero"),
        ("def get_config(:\n", "at line 1: SyntaxError"),
    ],
)
def test_a_config_file_that_does_not_load_is_named_with_its_line(tmp_path, text, said):
    from keras_eqssl.cli._config import ConfigFileError, check_config_file

    path = tmp_path / "mine.py"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=f"config file {path} .*{said}".replace("(", "\\(").replace(")", "\\)")):
        check_config_file(str(path))
    check_config_file(str(ROOT / "configs" / "simclr.py"))  # a good one passes


def test_the_cli_says_a_config_file_raised_in_one_line(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("def get_config():\n    return {}['model']\n")
    result = run_cli("train", f"--config={path}")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: config file {path} fails to load at line 2: KeyError: 'model'"
    )


@pytest.mark.slow  # an end-to-end run; CI runs it in the full suite
def test_train_runs_a_short_training_and_saves_the_model(tmp_path):
    result = run_cli(
        "train", "--config=configs/simclr_recon.py", "--config.data.source=skimage_photos",
        "--config.train.steps=4", "--config.train.checkpoint_every=2", "--config.data.batch_size=8",
        "--config.model.width=0.0625", "--config.model.split=(8,8)", "--config.augment.size=32",
        "--config.data.image_size=48", f"--config.workdir={tmp_path}", "--config.train.progress=False",
        "--config.data.num_images=96", "--config.eval.families=rotation", "--config.eval.heads=linear",
        "--config.eval.parts=embedding,equivariant",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained steps 0..4" in result.stdout and "recon" in result.stdout
    assert (tmp_path / "model.keras").exists()
    # the main job ends with the export and the report, the untrained network beside the trained one
    assert (tmp_path / "export" / "saved_model.pb").exists() and (tmp_path / "export_init" / "saved_model.pb").exists()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "trained" in report and "random init" in report and "constant predictor" in report
    assert "This report is one training run (seed 0)" in report and "one training run, seed 0" in result.stdout
    assert "params rotation R² (equi)" in result.stdout and " ± " in result.stdout
    assert (tmp_path / "report" / "reconstruction_recon_v2.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "checkpoints" / "ckpt-00000004.keras").exists()
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_train_rejects_a_non_pair_policy_naming_it(tmp_path):
    result = run_cli(
        "train", "--config=configs/simclr.py", "--config.augment.policy=gtsa", "--config.data.source=skimage_photos",
        "--config.train.steps=2", f"--config.workdir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr  # refused by the config check
    assert "config.augment.policy='gtsa'" in result.stderr and "'v1'" in result.stderr


@pytest.mark.slow  # two CLI processes (16 s); the one-line-error path is checked by the default suite's train CLI cases
def test_evaluate_names_a_bad_model_and_a_bad_data_root(tmp_path):
    result = run_cli("evaluate", f"--model={tmp_path / 'nothing'}", "--data=skimage_photos", f"--out={tmp_path}")
    assert result.returncode == 2 and str(tmp_path / "nothing") in result.stderr
    (tmp_path / "notaroot").mkdir()
    result = run_cli("evaluate", f"--model={tmp_path / 'notaroot'}", f"--data={tmp_path / 'notaroot'}")
    assert result.returncode == 2 and "notaroot" in result.stderr


@pytest.mark.slow
def test_the_width_that_crashed_onednn_trains_a_step(tmp_path):
    """`model.width=0.125`, `split=(32,32)`, cifar stem once died with SIGSEGV (a double free in oneDNN)
    in the first gradient (TensorFlow 2.21, an Intel CPU with AMX). It runs here with oneDNN on, as the
    package's default has it on x86-64 CPUs, in a subprocess so a crash fails this test instead of
    killing the test run."""
    result = run_cli(
        "train", "--config.data.source=skimage_photos", "--config.data.num_images=16",
        "--config.data.batch_size=16", "--config.model.width=0.125", "--config.model.split=(32,32)",
        "--config.model.stem=cifar", "--config.train.steps=1", "--config.train.checkpoint_every=1",
        "--config.train.progress=False", "--config.eval.enabled=False", f"--config.workdir={tmp_path}",
        timeout=600, TF_ENABLE_ONEDNN_OPTS="1",
    )  # fmt: skip
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    assert "trained steps 0..1" in result.stdout
    assert "oneDNN on (TF_ENABLE_ONEDNN_OPTS=1)" in result.stdout


@pytest.mark.parametrize("onednn", [True, False])
def test_deterministic_runs_warn_when_onednn_is_on(onednn, monkeypatch):
    """Bit-exact resume needs oneDNN off: a deterministic run says so where it is on."""
    import tensorflow as tf
    from absl import logging

    from keras_eqssl import default_config, machine
    from keras_eqssl.cli import train

    monkeypatch.setattr(machine, "onednn_enabled", lambda: onednn)
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)  # not for the other tests
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args if args else msg))
    config = default_config.get_config()
    config.train.precision = "float32"
    config.train.deterministic = True
    train._setup(config)
    assert any("TF_ENABLE_ONEDNN_OPTS=0" in w for w in warnings) == onednn, warnings
