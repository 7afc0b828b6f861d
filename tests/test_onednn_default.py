"""oneDNN on by default where it is faster, a value the user set kept, and `train.deterministic=True`
turning it off (also when a config file, read after TensorFlow is imported, asks for it)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from run_helpers import env_as_a_user_has_it
from train_helpers import ROOT

from keras_eqssl.onednn import ONEDNN_VARIABLE, onednn_is_faster_here

EXPECTED_DEFAULT = "1" if onednn_is_faster_here() else "None"


def _python(code: str, **env_values) -> str:
    env = env_as_a_user_has_it(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **env_values)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "user_value, value, why",
    [
        (None, EXPECTED_DEFAULT, "(keras_eqssl's default on this CPU: TF_ENABLE_ONEDNN_OPTS=1|TensorFlow's default on this CPU)"),
        ("0", "0", "TF_ENABLE_ONEDNN_OPTS=0"),
        ("1", "1", "TF_ENABLE_ONEDNN_OPTS=1"),
    ],
)  # fmt: skip
def test_import_turns_onednn_on_where_faster_keeps_the_users_value_and_says_why(user_value, value, why):
    """Without importing TensorFlow (the banner's on/off is checked in the slow run below)."""
    extra = {} if user_value is None else {ONEDNN_VARIABLE: user_value}
    code = "import os, keras_eqssl, keras_eqssl.onednn as o; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), o.why_onednn())"
    seen, reported = _python(code, **extra).split(maxsplit=1)
    assert seen == value
    assert re.fullmatch(why, reported), reported


def test_deterministic_turns_the_packages_default_off_but_not_the_users_value():
    code = (
        "import os, keras_eqssl; from keras_eqssl.onednn import choose_onednn; "
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), choose_onednn(deterministic=True), "
        "os.environ.get('TF_ENABLE_ONEDNN_OPTS'))"
    )
    assert _python(code).split() == [EXPECTED_DEFAULT, "0", "0"]
    assert _python(code, **{ONEDNN_VARIABLE: "1"}).split() == ["1", "None", "1"]


def test_nothing_changes_once_tensorflow_is_imported():
    code = (
        "import os, tensorflow, keras_eqssl; from keras_eqssl.onednn import choose_onednn; "
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), choose_onednn(deterministic=True))"
    )
    assert _python(code).split() == ["None", "None"]


def _train(tmp_path, *args):
    command = [
        sys.executable, "-m", "keras_eqssl.cli.train", *args, "--config.data.source=skimage_photos",
        "--config.data.num_images=8", "--config.data.batch_size=8", "--config.model.width=0.0625",
            "--config.model.split=(16,16)",
        "--config.augment.size=32", "--config.train.steps=1", "--config.train.progress=False",
        "--config.eval.enabled=False", f"--config.workdir={tmp_path / 'run'}",
    ]  # fmt: skip
    env = env_as_a_user_has_it(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow  # two training runs of one step
def test_a_run_is_fast_by_default_and_a_deterministic_config_file_restarts_with_onednn_off(tmp_path):
    default = _train(tmp_path / "default")
    if onednn_is_faster_here():
        assert "oneDNN on (keras_eqssl's default on this CPU: TF_ENABLE_ONEDNN_OPTS=1)" in default
    config = tmp_path / "deterministic.py"
    config.write_text(
        "from keras_eqssl import default_config\n\n\ndef get_config():\n"
        "    c = default_config.get_config()\n    c.train.deterministic = True\n    return c\n"
    )
    deterministic = _train(tmp_path / "det", f"--config={config}")
    assert "oneDNN off (train.deterministic=True: TF_ENABLE_ONEDNN_OPTS=0)" in deterministic
    if onednn_is_faster_here():  # TensorFlow was imported with it on: the command started again
        assert "starting again with oneDNN off" in deterministic
